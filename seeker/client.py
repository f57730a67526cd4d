"""SeekerClient: the Python client, used by the CLI and by helpers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

from seeker.models import TaskState
from serving.http import JsonClient


def progress_key(task: dict) -> tuple:
    """What changes when a task makes progress: its state and its replicas'."""
    return task["state"], tuple((a["attempt"], a["state"]) for a in task.get("assignments", []))


class SeekerClient(JsonClient):
    """Talk to a seeker: `SeekerClient("http://head:7070", token)`."""

    # --- users ---------------------------------------------------------------

    def submit(self, image: str, command: list[str] | None = None, **spec) -> dict:
        """Submit a task; `spec` holds the other TaskSpec fields (env, resources, ...)."""
        body = {"image": image, "command": list(command or []), **spec}
        return self.request("POST", "/api/v1/tasks", json=body)

    def get(self, task_id: str) -> dict:
        return self.request("GET", f"/api/v1/tasks/{task_id}")

    def tasks(self, state: str | None = None, limit: int = 50) -> list[dict]:
        """The newest `limit` tasks (in `state`, if given)."""
        return self.tasks_page(state, limit)["tasks"]

    def tasks_page(
        self, state: str | None = None, limit: int = 50, after: str | None = None
    ) -> dict:
        """One page: {"tasks": [...], "next": cursor or None}; pass `next` as
        `after` for the page after it."""
        params = {"limit": limit, "state": state, "after": after}
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

    def helpers(self) -> list[dict]:
        return self.request("GET", "/api/v1/helpers")["helpers"]

    def remove_helper(self, helper_id: str) -> dict:
        return self.request("DELETE", f"/api/v1/helpers/{helper_id}")

    def wait(
        self,
        task_id: str,
        timeout: float | None = None,
        poll: float = 0.25,
        on_change: Callable[[dict], None] | None = None,
    ) -> dict:
        """Poll until the task ends; returns it. Raises TimeoutError."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            task = self.get(task_id)
            seen = progress_key(task)
            if on_change and seen != last:
                on_change(task)
                last = seen
            if task["state"] in TaskState.final():
                return task
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} still {task['state']} after {timeout}s")
            time.sleep(poll)

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
