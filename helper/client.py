"""What the seeker uses to push work to a helper."""

from __future__ import annotations

from serving.http import JsonClient


class HelperClient(JsonClient):
    def assign(self, assignment: dict) -> dict:
        return self.request("POST", "/api/v1/assignments", json=assignment)

    def cancel(self, task_id: str, attempt: int) -> dict:
        return self.request("DELETE", f"/api/v1/assignments/{task_id}.{attempt}")

    def status(self) -> dict:
        return self.request("GET", "/api/v1/status")
