"""What the helper (posting) and the seeker (reading) use to talk to the channel."""

from __future__ import annotations

from serving.http import JsonClient


class ChannelClient(JsonClient):
    def post_result(self, result: dict) -> dict:
        return self.request("POST", "/api/v1/results", json=result)

    def results(
        self, task_id: str, limit: int = 100, after: str | None = None, order: str = "oldest"
    ) -> dict:
        params = {"task_id": task_id, "limit": limit, "order": order}
        if after:
            params["after"] = after
        return self.request("GET", "/api/v1/results", params=params)

    def all_results(self, task_id: str) -> list[dict]:
        out, after = [], None
        while True:
            page = self.results(task_id, limit=500, after=after)
            out.extend(page["results"])
            after = page.get("next")
            if not after:
                return out

    def result(self, result_id: str) -> dict:
        return self.request("GET", f"/api/v1/results/{result_id}")
