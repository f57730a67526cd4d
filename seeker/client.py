"""SeekerClient: the Python client, used by the CLI and by helpers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

from seeker.models import TaskState
from seeker.uploads import packed
from serving.http import ApiError, JsonClient

OCTET_STREAM = "application/octet-stream"
UPLOAD_READ_TIMEOUT = 600.0


def progress_key(task: dict) -> tuple:
    """What changes when a task makes progress: its state and its replicas'."""
    return task["state"], tuple((a["attempt"], a["state"]) for a in task.get("assignments", []))


# seconds a blocking query of a task or an array waits in SeekerClient.wait
# (and wait_array): for its end,
# or, showing progress, for at most this before it is asked again
TASK_WAIT = 60
PROGRESS_WAIT = 1


class SeekerClient(JsonClient):
    """Talk to a seeker: `SeekerClient("http://head:7070", token)`."""

    sleep = staticmethod(time.sleep)  # between polls of a seeker without blocking queries

    # --- users ---------------------------------------------------------------

    def submit(self, image: str, command: list[str] | None = None, **spec) -> dict:
        """Submit a task; `spec` holds the other TaskSpec fields (env, resources, ...)."""
        body = {"image": image, "command": list(command or []), **spec}
        return self.request("POST", "/api/v1/tasks", json=body)

    def submit_array(
        self, image: str, command: list[str] | None = None, array: int | str = 1, **spec
    ) -> dict:
        """Submit an array: `array` tasks (indices 0 to N-1) or the indices of
        a range "A-B", all of one spec, in one request. Returns
        {"array_id", "size", "tasks": [{"task_id", "array_index", "state"}]}."""
        body = {"image": image, "command": list(command or []), "array": array, **spec}
        return self.request("POST", "/api/v1/arrays", json=body)

    def array(self, array_id: str, wait: int = 0) -> dict:
        """An array's tasks counted by state: {"counts", "summary", "done", ...};
        with `wait` (seconds, at most 300) and some not ended, the seeker
        answers when the last ends, or when the time is up (a blocking query)."""
        params = {"wait": wait} if wait else None
        path = f"/api/v1/arrays/{array_id}"
        return self.request("GET", path, params=params, timeout=self._longer(wait))

    def cancel_array(self, array_id: str) -> dict:
        """Cancel every task of the array that has not ended."""
        return self.request("DELETE", f"/api/v1/arrays/{array_id}")

    def array_tasks(self, array_id: str) -> list[dict]:
        """Every task of an array, by index."""
        found, after = [], None
        while True:
            page = self.tasks_page(limit=500, after=after, array_id=array_id)
            found += page["tasks"]
            after = page["next"]
            if not after:
                return sorted(found, key=lambda t: t["array_index"])

    def wait_array(
        self,
        array_id: str,
        timeout: float | None = None,
        poll: float = 0.5,
        on_change: Callable[[dict], None] | None = None,
    ) -> dict:
        """Wait until every task of the array has ended; returns its counts.
        Raises TimeoutError. Blocking queries, as `wait()` makes: with
        `on_change` (called with the counts, then whenever they change) each
        waits at most a second; a seeker that answers at once is asked
        again every `poll` seconds."""
        return self._wait_for(
            lambda wait: self.array(array_id, wait),
            lambda array: array["done"],
            lambda array: array["summary"],
            lambda array: f"array {array_id} not done after {timeout}s: {array['summary']}",
            timeout,
            poll,
            on_change,
        )

    def upload_input(self, path: str | Path, dest: str | None = None) -> dict:
        """Upload a file, or a directory (packed as a tar, unpacked for the
        task), unless the seeker's channel has these bytes already; returns
        the entry for a task's `inputs`: its `artifact_id` (sha256:<hex>),
        its `path` in the container (`dest`, default /input/<name>) and
        whether it is `unpack`ed."""
        with packed(Path(path)) as (file, name, sha256, is_dir):
            try:
                self.request("GET", f"/api/v1/inputs/sha256:{sha256}")
            except ApiError as exc:
                if exc.status != 404:
                    raise
                with open(file, "rb") as f:
                    self.raw(
                        "POST",
                        "/api/v1/inputs",
                        params={"name": name, "sha256": sha256},
                        data=f,
                        headers={"Content-Type": OCTET_STREAM},
                        timeout=(self.timeout, max(self.timeout, UPLOAD_READ_TIMEOUT)),
                    ).close()
        local = name.removesuffix(".tar") if is_dir else name
        return {
            "artifact_id": f"sha256:{sha256}",
            "path": dest or f"/input/{local}",
            "unpack": is_dir,
        }

    def get(self, task_id: str, wait: int = 0) -> dict:
        """The task; with `wait` (seconds, at most 300) and the task not
        ended, the seeker answers when it ends, or with the task as it is
        when the time is up (a blocking query)."""
        params = {"wait": wait} if wait else None
        path = f"/api/v1/tasks/{task_id}"
        return self.request("GET", path, params=params, timeout=self._longer(wait))

    def tasks(self, state: str | None = None, limit: int = 50) -> list[dict]:
        """The newest `limit` tasks (in `state`, if given)."""
        return self.tasks_page(state, limit)["tasks"]

    def tasks_page(
        self,
        state: str | None = None,
        limit: int = 50,
        after: str | None = None,
        array_id: str | None = None,
    ) -> dict:
        """One page: {"tasks": [...], "next": cursor or None}; pass `next` as
        `after` for the page after it; `array_id`: one array's tasks."""
        params = {"limit": limit, "state": state, "after": after, "array_id": array_id}
        return self.request("GET", "/api/v1/tasks", params={k: v for k, v in params.items() if v})

    def all_tasks(self, state: str | None = None, page: int = 500) -> Iterator[dict]:
        """Every task (in `state`, if given), newest first, a page at a time."""
        after = None
        while True:
            found = self.tasks_page(state, page, after)
            yield from found["tasks"]
            after = found["next"]
            if not after:
                return

    def cancel(self, task_id: str) -> dict:
        return self.request("DELETE", f"/api/v1/tasks/{task_id}")

    def results(self, task_id: str) -> list[dict]:
        return self.request("GET", f"/api/v1/tasks/{task_id}/results")["results"]

    def download_artifact(self, artifact_id: str, dest: str | Path) -> Path:
        """Save an artifact (as listed in a result's `artifacts`) to `dest`."""
        return self.download(f"/api/v1/artifacts/{quote(artifact_id, safe='')}", dest)

    def download_results(self, task_id: str, directory: str | Path) -> list[Path]:
        """Every artifact of every result of a task, under
        DIRECTORY/<helper name>-<attempt>/<artifact name>."""
        saved = []
        for r in self.results(task_id):
            folder = Path(directory) / f"{r.get('helper_name') or r['helper_id']}-{r['attempt']}"
            for a in r.get("artifacts", []):
                dest = folder / a["name"]
                dest.parent.mkdir(parents=True, exist_ok=True)
                saved.append(self.download_artifact(a["artifact_id"], dest))
        return saved

    def helpers(self, online: bool | None = None, page: int = 1000) -> list[dict]:
        """Every helper (only those online, or offline, if `online` is given),
        by name, read a page at a time."""
        found, after = [], None
        while True:
            got = self.helpers_page(page, after, online)
            found += got["helpers"]
            after = got["next"]
            if not after:
                return found

    def helpers_page(
        self, limit: int = 100, after: str | None = None, online: bool | None = None
    ) -> dict:
        """One page: {"helpers": [...], "next", "total", "offline"}; pass
        `next` as `after` for the page after it."""
        params: dict = {"limit": limit}
        if after:
            params["after"] = after
        if online is not None:
            params["online"] = "true" if online else "false"
        return self.request("GET", "/api/v1/helpers", params=params)

    def helper(self, key: str) -> dict:
        """One helper, by its id or its name, as the list shows it."""
        return self.request("GET", f"/api/v1/helpers/{quote(key, safe='')}")

    def remove_helper(self, helper_id: str) -> dict:
        return self.request("DELETE", f"/api/v1/helpers/{helper_id}")

    def wait(
        self,
        task_id: str,
        timeout: float | None = None,
        poll: float = 0.25,
        on_change: Callable[[dict], None] | None = None,
    ) -> dict:
        """Wait until the task ends; returns it. Raises TimeoutError.

        Blocking queries (`get(task_id, wait=...)`): the seeker answers the
        moment the task ends, and a task that runs an hour costs a request a
        minute. With `on_change` (called with the task as it is, then
        whenever its state or an assignment's moved on) each query waits at
        most a second, so that progress shows within one. A seeker that
        answers at once (one from before blocking queries) is asked again
        every `poll` seconds."""
        return self._wait_for(
            lambda wait: self.get(task_id, wait),
            lambda task: task["state"] in TaskState.final(),
            progress_key,
            lambda task: f"task {task_id} still {task['state']} after {timeout}s",
            timeout,
            poll,
            on_change,
        )

    def _wait_for(
        self,
        ask: Callable[[int], dict],
        ended: Callable[[dict], bool],
        progress: Callable[[dict], object],
        late: Callable[[dict], str],
        timeout: float | None,
        poll: float,
        on_change: Callable[[dict], None] | None,
    ) -> dict:
        """`ask(wait)` (a blocking query of up to `wait` seconds) until what
        it answers has `ended`; `on_change` with it at first and whenever
        its `progress` moved on; TimeoutError (saying `late`) after `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        most = PROGRESS_WAIT if on_change else TASK_WAIT
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            wait = most if left is None else max(0, min(most, math.ceil(left)))
            if on_change and last is None:
                wait = 0  # as it is now, at once
            asked = time.monotonic()
            answer = ask(wait)
            seen = progress(answer)
            if on_change and seen != last:
                on_change(answer)
                last = seen
            if ended(answer):
                return answer
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(late(answer))
            if wait and time.monotonic() - asked < min(wait, poll):
                self.sleep(poll)  # answered at once: not a blocking query

    def events(self, after: int = 0, limit: int = 100, wait: int = 0) -> dict:
        """A page of the event log: the events after `after` (a `seq`),
        oldest first, and `next`. With `wait` (seconds, at most 300) and
        none yet, the seeker answers at the first one, or empty when the
        time is up (a blocking query)."""
        params = {"after": after, "limit": limit}
        if wait:
            params["wait"] = wait
        return self.request("GET", "/api/v1/events", params=params, timeout=self._longer(wait))

    def follow_events(self, after: int = 0, wait: int = 60) -> Iterator[dict]:
        """Every event after `after`, as it is published: blocking queries
        of up to `wait` seconds, one after another. Never ends by itself."""
        while True:
            page = self.events(after, 1000, wait)
            yield from page["events"]
            if page["next"] is not None:
                after = page["next"]

    def _longer(self, seconds: float) -> float | tuple[float, float]:
        """This client's timeout, its reading `seconds` longer."""
        if isinstance(self.timeout, tuple):
            return self.timeout[0], self.timeout[1] + seconds
        return self.timeout + seconds

    # --- helpers -------------------------------------------------------------

    def register_helper(self, registration: dict) -> dict:
        return self.request("POST", "/api/v1/helpers", json=registration)

    def report(self, task_id: str, event: dict) -> dict:
        return self.request("POST", f"/api/v1/tasks/{task_id}/events", json=event)

    def heartbeat(self, helper_id: str, beat: dict) -> dict:
        """A registered helper is alive: {"heartbeat", "stop"}."""
        return self.request("POST", f"/api/v1/helpers/{helper_id}/heartbeat", json=beat)

    def poll_work(self, helper_id: str, poll: dict, timeout: float) -> dict:
        """A pulling helper's long poll: {"assignments", "stop", "wait"}."""
        return self.request("POST", f"/api/v1/helpers/{helper_id}/work", json=poll, timeout=timeout)
