"""A service's main thread waits for SIGTERM (serving.wsgi.wait_for_signal)
while its other threads work. The kernel may hand a signal sent to the
process to any of its threads; the main thread must still hear it (a
pulling helper once sat out its 30 s grace, its main thread asleep)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import signal, threading
    from serving.wsgi import wait_for_signal

    def other_thread():
        # SIGTERM delivered to this thread, not to the main one
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    threading.Timer(0.2, other_thread).start()
    print(wait_for_signal(), flush=True)
    """
)


def test_a_sigterm_delivered_to_another_thread_ends_the_wait():
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "15"
