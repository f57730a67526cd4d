"""The helper's only door to Docker: run one container to its end."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import DeviceRequest

log = logging.getLogger(__name__)

DEFAULT_LOG_CAP = 1024 * 1024
LABEL = "io.seeker.assignment"


@dataclass
class RunSpec:
    name: str
    image: str
    command: list[str]
    env: dict[str, str]
    cpus: float = 0
    memory: int = 0
    gpu_indices: list[int] = field(default_factory=list)
    declared_gpus: bool = False  # test-only GPUs: nothing to ask Docker for
    timeout: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    network_mode: str = "bridge"
    pids_limit: int = 1024


@dataclass
class RunOutcome:
    status: str  # succeeded, failed, timed_out, error, cancelled
    exit_code: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


class DockerRuntime:
    def __init__(
        self,
        client: docker.DockerClient | None = None,
        log_cap: int = DEFAULT_LOG_CAP,
        stop_grace: float = 10.0,
        pull_timeout: float = 300.0,
    ):
        self.client = client or docker.from_env(timeout=pull_timeout)
        self.log_cap = log_cap
        self.stop_grace = stop_grace
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    def ping(self) -> None:
        self.client.ping()

    def has_image(self, image: str) -> bool:
        try:
            self.client.images.get(image)
            return True
        except ImageNotFound:
            return False

    def stop(self, name: str) -> bool:
        """Stop a running container (SIGTERM, grace, SIGKILL); its outcome is `cancelled`."""
        with self._lock:
            self._cancelled.add(name)
        try:
            self.client.containers.get(name).stop(timeout=int(self.stop_grace))
            return True
        except NotFound:
            return False

    def run(self, spec: RunSpec, on_started: Callable[[], None] = lambda: None) -> RunOutcome:
        try:
            self._ensure_image(spec.image)
        except DockerException as exc:
            return RunOutcome("error", error=str(exc), finished_at=_now())
        try:
            container = self.client.containers.create(**self._create_args(spec))
        except APIError as exc:
            return RunOutcome(
                "error", error=f"cannot create container: {_explain(exc)}", finished_at=_now()
            )
        try:
            return self._run_created(container, spec, on_started)
        finally:
            with self._lock:
                self._cancelled.discard(spec.name)
            try:
                container.remove(force=True)
            except DockerException as exc:
                log.warning("could not remove container %s: %s", spec.name, exc)

    def _ensure_image(self, image: str) -> None:
        if self.has_image(image):
            return
        try:
            self.client.images.pull(image)
        except DockerException as exc:
            raise DockerException(
                f"image {image!r} is not on this host and could not be pulled: {_explain(exc)}"
            ) from exc

    def _create_args(self, spec: RunSpec) -> dict:
        args = dict(
            image=spec.image,
            command=spec.command or None,
            environment=spec.env,
            name=spec.name,
            labels=spec.labels,
            detach=True,
            network_mode=spec.network_mode,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            privileged=False,
            pids_limit=spec.pids_limit,
        )
        if spec.memory:
            args["mem_limit"] = spec.memory
            args["memswap_limit"] = spec.memory
        if spec.cpus:
            args["nano_cpus"] = int(spec.cpus * 1e9)
        if spec.gpu_indices and not spec.declared_gpus:
            ids = [str(i) for i in spec.gpu_indices]
            args["device_requests"] = [DeviceRequest(device_ids=ids, capabilities=[["gpu"]])]
        return args

    def _run_created(self, container, spec: RunSpec, on_started) -> RunOutcome:
        with self._lock:
            if spec.name in self._cancelled:
                return RunOutcome("cancelled", error="cancelled by user", finished_at=_now())
        try:
            container.start()
        except APIError as exc:
            return RunOutcome(
                "error", error=f"cannot start container: {_explain(exc)}", finished_at=_now()
            )
        started = _now()
        on_started()
        timed_out = False
        try:
            exit_code = container.wait(timeout=spec.timeout)["StatusCode"]
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            timed_out = True
            container.stop(timeout=int(self.stop_grace))
            exit_code = container.wait()["StatusCode"]
        finished = _now()
        container.reload()
        out, out_cut = self._logs(container, stdout=True)
        err, err_cut = self._logs(container, stdout=False)
        outcome = RunOutcome(
            "succeeded" if exit_code == 0 else "failed",
            exit_code,
            out,
            err,
            out_cut,
            err_cut,
            started,
            finished,
        )
        with self._lock:
            cancelled = spec.name in self._cancelled
        if cancelled:
            outcome.status, outcome.error = "cancelled", "cancelled by user"
        elif timed_out:
            outcome.status, outcome.error = (
                "timed_out",
                f"stopped after the {spec.timeout:g}s timeout",
            )
        elif container.attrs.get("State", {}).get("OOMKilled"):
            outcome.status = "error"
            outcome.error = f"out of memory: killed at the {spec.memory} byte memory limit"
        return outcome

    def _logs(self, container, stdout: bool) -> tuple[bytes, bool]:
        """One stream of the container's logs, cut at the cap."""
        chunks, size = [], 0
        stream = container.logs(stdout=stdout, stderr=not stdout, stream=True, follow=False)
        try:
            for chunk in stream:
                chunks.append(chunk)
                size += len(chunk)
                if size > self.log_cap:
                    break
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()
        data = b"".join(chunks)
        return data[: self.log_cap], size > self.log_cap


def _explain(exc: DockerException) -> str:
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return explanation.decode() if isinstance(explanation, bytes) else str(explanation)
    return str(exc)
