"""The helper's only door to Docker: run one container to its end (or follow
one it started before a restart), under limits, with capped logs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import _create_container_args  # containers.create's own
from docker.types import DeviceRequest, Mount

from channel.models import ResultStatus
from helper.images import local_images
from helper.logs import LogStream, log_frames
from helper.runs import HELPER_LABEL, TIMEOUT_LABEL, RunOutcome, RunSpec
from serving.clock import Clock, utc_now

log = logging.getLogger(__name__)

DEFAULT_LOG_CAP = 1024 * 1024
OUTPUT_DIR = "/output"  # what a container writes here is kept as output.tar
SIGKILLED = 137  # 128 + SIGKILL
OOM_RECHECKS = 10


class DockerRuntime:
    def __init__(
        self,
        client: docker.DockerClient | None = None,
        log_cap: int = DEFAULT_LOG_CAP,
        stop_grace: float = 10.0,
        pull_timeout: float = 300.0,
        clock: Clock = utc_now,
    ):
        """`clock` times each run and decides what is left of its timeout."""
        self.client = client or docker.from_env(timeout=pull_timeout)
        if local_socket(self.client):
            # requests would look at the environment at every call (proxies,
            # ~/.netrc, a CA bundle: a quarter of a Docker call's CPU here),
            # none of which applies to a local socket; a tcp:// engine keeps it
            self.client.api.trust_env = False
        self.clock = clock
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

    def image_references(self) -> list[str]:
        """The references of the images on this host, normalised, newest
        first: one call to Docker (`GET /images/json`). Empty, with a
        warning, when Docker cannot answer: a report without images is not
        worth failing a heartbeat for."""
        try:
            return local_images(self.client.api.images())
        except (DockerException, requests.RequestException) as exc:
            log.warning("cannot list the local images: %s", exc)
            return []

    def stop(self, name: str) -> bool:
        """Stop a container (SIGTERM, grace period, SIGKILL); its outcome is `cancelled`."""
        with self._lock:
            self._cancelled.add(name)
        try:
            self.client.containers.get(name).stop(timeout=int(self.stop_grace))
            return True
        except NotFound:
            return False

    def run(
        self,
        spec: RunSpec,
        on_started: Callable[[], None] = lambda: None,
        on_pulling: Callable[[], None] = lambda: None,
        on_exited: Callable[[], None] = lambda: None,
    ) -> RunOutcome:
        """Create, start and follow the container to its end, then take its
        logs and remove it. `on_exited` is called when the container has
        exited, before the logs and the removal (its slot is free then)."""
        try:
            container = self._create(spec, on_pulling)
        except _NoImage as exc:
            return RunOutcome(ResultStatus.ERROR, error=str(exc), finished_at=self.clock())
        except APIError as exc:
            return RunOutcome(
                ResultStatus.ERROR,
                error=f"cannot create container: {_explain(exc)}",
                finished_at=self.clock(),
            )
        try:
            if self._was_cancelled(spec.name):
                return RunOutcome(
                    ResultStatus.CANCELLED, error="cancelled by user", finished_at=self.clock()
                )
            try:
                container.start()
            except APIError as exc:
                return RunOutcome(
                    ResultStatus.ERROR,
                    error=f"cannot start container: {_explain(exc)}",
                    finished_at=self.clock(),
                )
            started = self.clock()
            on_started()
            return self._to_the_end(container, spec, started, on_exited)
        finally:
            self._forget(container, spec.name)

    def follow(self, container, spec: RunSpec, started: datetime | None) -> RunOutcome:
        """Follow a container started by an earlier helper process to its end."""
        try:
            return self._to_the_end(container, spec, started)
        finally:
            self._forget(container, spec.name)

    def ours(self, helper_id: str) -> list:
        """Containers this helper started (found by label), running or not."""
        label = f"{HELPER_LABEL}={helper_id}"
        return self.client.containers.list(all=True, filters={"label": label})

    # --- steps ---------------------------------------------------------------

    def _create(self, spec: RunSpec, on_pulling: Callable[[], None]):
        """Create the container, pulling its image as the task's policy says.
        Under `if-missing` and `never` the create itself is the image check:
        the engine answers "no such image" when it is absent, so an image
        already here (the usual case) costs no extra call."""
        args = self._create_args(spec)
        if spec.pull == "always":
            self._pull(spec.image, self.has_image(spec.image), on_pulling)
            return self._create_container(args)
        try:
            return self._create_container(args)
        except ImageNotFound:
            if spec.pull == "never":
                raise _NoImage(
                    f"image {spec.image!r} is not on this host and the task's pull policy "
                    "is 'never'"
                ) from None
        self._pull(spec.image, False, on_pulling)
        return self._create_container(args)

    def _create_container(self, args: dict):
        """The SDK's `containers.create(**args)` less the inspect it makes
        of the container right after creating it: a run needs only its id
        (`reload()` reads its state where a run looks at it)."""
        made = self.client.api.create_container(
            **_create_container_args({**args, "version": self.client.api._version})
        )
        return self.client.containers.prepare_model({"Id": made["Id"]})

    def _pull(self, image: str, present: bool, on_pulling: Callable[[], None]) -> None:
        on_pulling()
        try:
            self.client.images.pull(image)
        except (DockerException, requests.RequestException) as exc:
            where = "is not on this host and " if not present else ""
            raise _NoImage(f"image {image!r} {where}could not be pulled: {_explain(exc)}") from exc

    def _create_args(self, spec: RunSpec) -> dict:
        args = dict(
            image=spec.image,
            command=spec.command or None,
            environment=spec.env,
            name=spec.name,
            labels={**spec.labels, **({TIMEOUT_LABEL: str(spec.timeout)} if spec.timeout else {})},
            detach=True,
            network_mode=spec.network_mode,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            privileged=False,
            pids_limit=spec.pids_limit,
        )
        if spec.capabilities:
            args["cap_add"] = list(spec.capabilities)
        if spec.mounts:
            args["mounts"] = [
                Mount(
                    target=m["target"],
                    source=m["source"],
                    type="bind",
                    read_only=m.get("read_only", True),
                )
                for m in spec.mounts
            ]
        if spec.memory:
            args["mem_limit"] = spec.memory
            args["memswap_limit"] = spec.memory
        if spec.cpus:
            args["nano_cpus"] = int(spec.cpus * 1e9)
        if spec.gpu_indices and not spec.declared_gpus:
            # by uuid: a MIG instance has no index of its own, and a uuid
            # names the same device whatever order the driver lists them in
            ids = list(dict.fromkeys(spec.gpu_uuids)) or [str(i) for i in spec.gpu_indices]
            args["device_requests"] = [DeviceRequest(device_ids=ids, capabilities=[["gpu"]])]
        return args

    def _to_the_end(
        self,
        container,
        spec: RunSpec,
        started: datetime | None,
        on_exited: Callable[[], None] = lambda: None,
    ) -> RunOutcome:
        timed_out = False
        timeout = spec.timeout
        if timeout and started:
            timeout = max(0.1, timeout - (self.clock() - started).total_seconds())
        try:
            exit_code = container.wait(timeout=timeout)["StatusCode"]
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            timed_out = True
            container.stop(timeout=int(self.stop_grace))
            exit_code = container.wait()["StatusCode"]
        finished = self.clock()
        on_exited()
        if exit_code != 0 or spec.memory:
            # the OOM flag is only in the container's state: a clean exit
            # with no memory limit of its own has nothing to look up
            container.reload()
        out, err = self._logs(container, spec.spill_dir)
        outcome = RunOutcome(
            ResultStatus.SUCCEEDED if exit_code == 0 else ResultStatus.FAILED,
            exit_code,
            out.head(),
            err.head(),
            out.cut,
            err.cut,
            started,
            finished,
            artifacts={f"logs/{p.name}": p for p in (out.spill, err.spill) if p},
            stdout_digest="sha256:" + out.digest.hexdigest(),
        )
        packed = self._pack_output(container, spec.spill_dir)
        if packed:
            outcome.artifacts["output.tar"] = packed
        if self._was_cancelled(spec.name):
            outcome.status, outcome.error = ResultStatus.CANCELLED, "cancelled by user"
        elif timed_out:
            outcome.status = ResultStatus.TIMED_OUT
            outcome.error = f"stopped after the {spec.timeout:g}s timeout"
        elif (exit_code != 0 or spec.memory) and self._oom_killed(
            container, exit_code, spec.memory
        ):
            outcome.status = ResultStatus.ERROR
            outcome.error = f"out of memory: killed at its {spec.memory}-byte memory limit"
        elif exit_code == SIGKILLED and spec.memory:
            outcome.status = ResultStatus.ERROR
            outcome.error = (
                f"killed by SIGKILL with a {spec.memory}-byte memory limit: "
                "most likely out of memory"
            )
        return outcome

    @staticmethod
    def _oom_killed(container, exit_code: int, memory: int) -> bool:
        """Docker's OOMKilled flag; it can trail the exit by a moment (its OOM
        event races the exit event), so a memory-limited container killed by
        SIGKILL is looked at again briefly."""

        def flagged() -> bool:
            return bool(container.attrs.get("State", {}).get("OOMKilled"))

        if flagged():
            return True
        for _ in range(OOM_RECHECKS if exit_code == SIGKILLED and memory else 0):
            time.sleep(0.1)
            container.reload()
            if flagged():
                return True
        return False

    def _pack_output(self, container, spill_dir: Path | None) -> Path | None:
        """What the container wrote under /output, as a tar archive (None
        when it wrote no /output)."""
        if spill_dir is None:
            return None
        try:
            chunks, _ = container.get_archive(OUTPUT_DIR)
        except NotFound:
            return None
        spill_dir.mkdir(parents=True, exist_ok=True)
        path = spill_dir / "output.tar"
        with open(path, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        return path

    def _logs(self, container, spill_dir: Path | None) -> tuple[LogStream, LogStream]:
        """Both streams of the container's logs, each cut at the cap; a cut
        stream is also written whole to `spill_dir` (when set). One request
        for both: the SDK's `logs()` makes two calls per stream (it inspects
        the container first, to learn whether it has a TTY; ours never do)."""
        out = LogStream("stdout", self.log_cap, spill_dir)
        err = LogStream("stderr", self.log_cap, spill_dir)
        by_id = {1: out, 2: err}
        api = self.client.api
        res = api._get(
            api._url("/containers/{0}/logs", container.id),
            params={"stdout": 1, "stderr": 1, "follow": 0, "timestamps": 0, "tail": "all"},
            stream=True,
        )
        try:
            api._raise_for_status(res)
            for stream_id, chunk in log_frames(res.raw):
                stream = by_id.get(stream_id)
                if stream is not None:
                    stream.add(chunk)
                if out.done and err.done:
                    break  # both cut, and nowhere to keep the rest
        finally:
            res.close()
            out.close()
            err.close()
        return out, err

    def _was_cancelled(self, name: str) -> bool:
        with self._lock:
            return name in self._cancelled

    def _forget(self, container, name: str) -> None:
        with self._lock:
            self._cancelled.discard(name)
        try:
            container.remove(force=True)
        except DockerException as exc:
            log.warning("could not remove container %s: %s", name, exc)


class _NoImage(DockerException):
    """The image is not here and cannot be had under the task's pull policy."""


def local_socket(client: docker.DockerClient) -> bool:
    """Whether the client talks to its engine over a unix socket or a named
    pipe (the SDK names those `http+docker://`), not over TCP."""
    return str(getattr(getattr(client, "api", None), "base_url", "")).startswith("http+docker://")


def _explain(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return explanation.decode() if isinstance(explanation, bytes) else str(explanation)
    return str(exc)
