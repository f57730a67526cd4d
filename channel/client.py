"""What the helper (posting) and the seeker (reading) use to talk to the channel."""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import requests

from serving.http import JsonClient

OCTET_STREAM = "application/octet-stream"
UPLOAD_READ_TIMEOUT = 600.0  # the channel writes the whole body to GridFS before it answers
DOWNLOAD_BLOCK = 1024 * 1024


def bearer(secret: str | None) -> dict | None:
    return {"Authorization": f"Bearer {secret}"} if secret else None


class ChannelClient(JsonClient):
    """A helper stores with the receipt of each attempt (`receipt=`); a
    reader queries with the channel's token."""

    def post_result(self, result: dict, receipt: str | None = None) -> dict:
        return self.request("POST", "/api/v1/results", json=result, headers=bearer(receipt))

    def results(
        self,
        task_id: str,
        limit: int = 100,
        after: str | None = None,
        order: str = "oldest",
        status: str | None = None,
        helper_id: str | None = None,
    ) -> dict:
        params = {"task_id": task_id, "limit": limit, "order": order}
        for key, value in (("after", after), ("status", status), ("helper_id", helper_id)):
            if value:
                params[key] = value
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

    def upload_artifact(
        self,
        task_id: str,
        helper_id: str,
        attempt: int,
        name: str,
        path: str | Path,
        receipt: str | None = None,
    ) -> dict:
        """Stream a file to the channel as the artifact `name` of an attempt.
        Uploading the same (task_id, helper_id, attempt, name) again stores
        nothing and returns the artifact stored first."""
        params = {"task_id": task_id, "helper_id": helper_id, "attempt": attempt, "name": name}
        with open(path, "rb") as f:
            resp = self.raw(
                "POST",
                "/api/v1/artifacts",
                params=params,
                data=f,
                headers={"Content-Type": OCTET_STREAM, **(bearer(receipt) or {})},
                timeout=(self.timeout, max(self.timeout, UPLOAD_READ_TIMEOUT)),
            )
        return resp.json()

    def artifacts(
        self, task_id: str, helper_id: str | None = None, attempt: int | None = None
    ) -> list[dict]:
        params: dict[str, Any] = {"task_id": task_id}
        if helper_id:
            params["helper_id"] = helper_id
        if attempt is not None:
            params["attempt"] = attempt
        return self.request("GET", "/api/v1/artifacts", params=params)["artifacts"]

    def download_artifact(self, artifact_id: str, dest_path: str | Path) -> Path:
        """Stream an artifact's bytes to `dest_path`; a download cut short
        leaves nothing there."""
        return self.download(f"/api/v1/artifacts/{quote(artifact_id, safe='')}", dest_path)

    # --- inputs: users upload with the token, helpers read with a grant -------

    def upload_input(self, name: str, sha256: str, body: BinaryIO) -> tuple[dict, bool]:
        """Stream a file to the channel as an input named `name` whose bytes
        have this sha256 (the channel checks it). Bytes already stored are
        not read again. Returns the stored input (`artifact_id`
        `sha256:<hex>`) and whether it is new. `body` needs a length (a file,
        or `len()`)."""
        resp = self.raw(
            "POST",
            "/api/v1/inputs",
            params={"name": name, "sha256": sha256},
            data=body,
            headers={"Content-Type": OCTET_STREAM},
            timeout=(self.timeout, max(self.timeout, UPLOAD_READ_TIMEOUT)),
        )
        return resp.json(), resp.status_code == 201

    def describe_input(self, artifact_id: str, grant: str | None = None) -> dict:
        """An uploaded input or a result's artifact, by id: name, size, sha256."""
        path = f"/api/v1/inputs/{quote(artifact_id, safe='')}"
        return self.request("GET", path, headers=bearer(grant))

    def describe_output(
        self, task_id: str, helper_id: str, attempt: int, name: str, grant: str | None = None
    ) -> dict:
        """The artifact `name` of one attempt's result (404 until it is stored)."""
        params = {"task_id": task_id, "helper_id": helper_id, "attempt": attempt, "name": name}
        return self.request("GET", "/api/v1/inputs", params=params, headers=bearer(grant))

    def open_artifact(self, artifact_id: str, grant: str | None = None) -> requests.Response:
        """An artifact's or an input's bytes as a streamed answer (close it)."""
        return self.raw(
            "GET",
            f"/api/v1/artifacts/{quote(artifact_id, safe='')}",
            stream=True,
            headers=bearer(grant),
            timeout=(self.timeout, max(self.timeout, UPLOAD_READ_TIMEOUT)),
        )
