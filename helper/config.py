"""What a helper is started with, and what it keeps in its data directory
across restarts: its id and the credential the seeker issued."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from helper.inputs import DEFAULT_CAP
from helper.runtime import DEFAULT_LOG_CAP
from serving.secret_files import read_secret, write_secret
from serving.tls import ServerCert


@dataclass
class HelperConfig:
    seeker_url: str
    channel_url: str
    token: str  # the operator's: reads this helper's status and metrics
    data_dir: Path
    join_token: str | None = None  # registers with the seeker (default: token)
    host: str = "127.0.0.1"
    port: int = 7072
    advertise_url: str | None = None
    name: str | None = None
    slots: int = 1
    prefetch: int = 0  # assignments accepted beyond the slots, each started when one frees
    labels: dict[str, str] = field(default_factory=dict)
    heartbeat: float | None = None  # seconds; None: as often as the seeker asks
    log_cap: int = DEFAULT_LOG_CAP
    network_mode: str = "bridge"
    declared: dict = field(default_factory=dict)  # TEST ONLY: see --test-resources
    allow_images: list[str] = field(default_factory=list)  # none: every image
    allow_mounts: list[str] = field(default_factory=list)  # none: no host mounts
    pull_timeout: float = 300.0
    input_cache: int = DEFAULT_CAP  # bytes of inputs kept in DATA_DIR/inputs
    tls: ServerCert | None = None  # serve HTTPS with this certificate
    ca_cert: Path | None = None  # the CA of the seeker's and channel's certificates
    pull: bool = False  # take work over a long poll: the seeker never connects here
    poll_wait: float | None = None  # the longest a poll waits; None: as the seeker says


class CredentialFile:
    """The credential the seeker issued, kept (mode 0600) in the data
    directory, so that a restarted helper registers with it rather than the
    join token, and the join token cannot be used to take its id over."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / "credential"

    def load(self) -> str | None:
        return read_secret(self.path)

    def save(self, credential: str) -> None:
        write_secret(self.path, credential)

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)


def helper_id(data_dir: Path) -> str:
    """This helper's stable id, kept in its data directory."""
    path = Path(data_dir) / "helper.json"
    if path.exists():
        return json.loads(path.read_text())["helper_id"]
    path.parent.mkdir(parents=True, exist_ok=True)
    new = uuid.uuid4().hex
    path.write_text(json.dumps({"helper_id": new}) + "\n")
    return new
