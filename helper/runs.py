"""What a run is, apart from the engine that runs it (helper/runtime.py):
what it asks for (RunSpec), how it ended (RunOutcome), and the labels its
container carries, by which a restarted helper finds and adopts it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from channel.models import ResultStatus

LABEL = "io.seeker.assignment"
HELPER_LABEL = "io.seeker.helper"
TIMEOUT_LABEL = "io.seeker.timeout"
RECEIPT_LABEL = "io.seeker.receipt"  # for a restarted helper to post an adopted run's result
DEVICES_LABEL = "io.seeker.devices"  # its GPUs, for a restarted helper's GPU check


@dataclass
class RunSpec:
    name: str
    image: str
    command: list[str]
    env: dict[str, str]
    cpus: float = 0
    memory: int = 0
    gpu_indices: list[int] = field(default_factory=list)
    gpu_uuids: list[str] = field(default_factory=list)  # asked of Docker when given
    declared_gpus: bool = False  # test-only GPUs: nothing to ask Docker for
    timeout: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    network_mode: str = "bridge"
    pids_limit: int = 1024
    pull: str = "if-missing"  # always, if-missing, never
    capabilities: list[str] = field(default_factory=list)  # kept; all others dropped
    mounts: list[dict] = field(default_factory=list)  # source, target, read_only
    spill_dir: Path | None = None  # where full logs go when they exceed the cap


@dataclass
class RunOutcome:
    status: ResultStatus
    exit_code: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    # files to upload as artifacts, by artifact name: the full logs of cut
    # streams (logs/stdout.log, logs/stderr.log) and /output (output.tar)
    artifacts: dict[str, Path] = field(default_factory=dict)
    stdout_digest: str = ""  # sha256 of all of stdout that was read
