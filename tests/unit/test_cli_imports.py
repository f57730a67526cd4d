"""The seeker's user commands (`submit`, `status`, ...) start without what
serves: `seeker status` in 0.4 s instead of 1.1 s (seeker/cli/servers.py)."""

from __future__ import annotations

import subprocess
import sys

SERVING = ("seeker.process.server", "seeker.process.up", "helper.agent", "docker", "apscheduler")
SERVING += ("flask", "pymongo", "channel.app")


def test_the_user_commands_import_no_server_helper_database_or_docker():
    code = (
        "import sys, seeker.cli.commands; "
        f"print(sorted(m for m in {SERVING!r} if m in sys.modules))"
    )
    imported = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert imported.strip() == "[]"
