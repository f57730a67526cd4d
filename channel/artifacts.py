"""Artifacts: files an attempt produced, kept in GridFS, stored once per
(task_id, helper_id, attempt, name).

The GridFS file document is the artifact record: `filename` is the artifact's
name, `metadata` holds the attempt it belongs to, its sha256 and when the
channel received it. A file document is written only after its last chunk, so
an upload in progress is never visible, and an upload that fails (too large,
cut off) removes the chunks it wrote."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from functools import cached_property
from typing import BinaryIO

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import GridFSBucket, GridIn, GridOut
from gridfs.errors import FileExists, NoFile
from pymongo import ASCENDING
from pymongo.database import Database

from serving.errors import ApiProblem

BUCKET = "artifacts"
CHUNK_SIZE = 255 * 1024  # the GridFS default
DEFAULT_MAX_ARTIFACT_BYTES = 1024**3
ORDER = [
    ("metadata.helper_id", ASCENDING),
    ("metadata.attempt", ASCENDING),
    ("filename", ASCENDING),
]
SUMMARY_PROJECTION = {
    "filename": 1,
    "length": 1,
    "metadata.helper_id": 1,
    "metadata.attempt": 1,
    "metadata.sha256": 1,
}


class ArtifactTooLarge(ApiProblem):
    status = 413
    code = "too_large"


def too_large(max_bytes: int) -> ArtifactTooLarge:
    return ArtifactTooLarge(
        f"artifact larger than the limit of {max_bytes} bytes", {"max_bytes": max_bytes}
    )


class ArtifactStore:
    def __init__(self, db: Database, chunk_size: int = CHUNK_SIZE):
        self.db = db
        self.files = db[f"{BUCKET}.files"]
        self.chunks = db[f"{BUCKET}.chunks"]
        self.chunk_size = chunk_size

    @cached_property
    def bucket(self) -> GridFSBucket:
        # Made on first use: listing and attaching need only `files`.
        return GridFSBucket(self.db, bucket_name=BUCKET, chunk_size_bytes=self.chunk_size)

    def ensure_indexes(self) -> None:
        key = [("metadata.task_id", ASCENDING), *ORDER]
        self.files.create_index(key, unique=True, name="one_artifact_per_name")
        self.files.create_index(
            [("metadata.task_id", ASCENDING), ("metadata.attempt", ASCENDING)],
            name="by_task_attempt",
        )
        # GridFS's own (the names pymongo gives them, so it finds them).
        self.files.create_index([("filename", ASCENDING), ("uploadDate", ASCENDING)])
        self.chunks.create_index([("files_id", ASCENDING), ("n", ASCENDING)], unique=True)

    def find(self, key: dict) -> dict | None:
        """The artifact stored under this key, or None."""
        doc = self.files.find_one(
            {
                "metadata.task_id": key["task_id"],
                "metadata.helper_id": key["helper_id"],
                "metadata.attempt": key["attempt"],
                "filename": key["name"],
            }
        )
        return public_artifact(doc) if doc else None

    def put(
        self, key: dict, stream: BinaryIO, uploaded_at: datetime, max_bytes: int
    ) -> tuple[dict, bool]:
        """Stream `stream` into GridFS a chunk at a time; returns (the artifact,
        whether it is new). A key already stored (also by an upload that ran at
        the same time) returns the first copy, and the bytes read are dropped.

        Raises ArtifactTooLarge past `max_bytes`, leaving nothing stored."""
        uploaded_at = uploaded_at.replace(microsecond=uploaded_at.microsecond // 1000 * 1000)
        metadata = {
            "task_id": key["task_id"],
            "helper_id": key["helper_id"],
            "attempt": key["attempt"],
            "uploaded_at": uploaded_at,
        }
        file_id = ObjectId()
        grid_in = open_upload(self.bucket, file_id, key["name"])
        digest, size = hashlib.sha256(), 0
        try:
            while block := stream.read(self.chunk_size):
                size += len(block)
                if size > max_bytes:
                    raise too_large(max_bytes)
                digest.update(block)
                grid_in.write(block)
            metadata["sha256"] = digest.hexdigest()
            grid_in.metadata = metadata
            grid_in.close()
        except FileExists:  # the same key was stored while this one streamed
            grid_in.abort()
            return self.find(key), False
        except BaseException:
            grid_in.abort()
            raise
        doc = {"_id": file_id, "filename": key["name"], "length": size, "metadata": metadata}
        return public_artifact(doc), True

    def for_task(
        self, task_id: str, helper_id: str | None = None, attempt: int | None = None
    ) -> list[dict]:
        """A task's artifacts, by helper, attempt and name."""
        query: dict = {"metadata.task_id": task_id}
        if helper_id is not None:
            query["metadata.helper_id"] = helper_id
        if attempt is not None:
            query["metadata.attempt"] = attempt
        return [public_artifact(d) for d in self.files.find(query).sort(ORDER)]

    def download(self, artifact_id: str) -> tuple[dict, Iterator[bytes]] | None:
        """The artifact and its bytes, read a chunk at a time; None if unknown."""
        try:
            grid_out = self.bucket.open_download_stream(ObjectId(artifact_id))
        except (InvalidId, TypeError, NoFile):
            return None
        doc = {
            "_id": grid_out._id,
            "filename": grid_out.filename,
            "length": grid_out.length,
            "metadata": grid_out.metadata,
        }
        return public_artifact(doc), self.blocks(grid_out)

    def blocks(self, grid_out: GridOut) -> Iterator[bytes]:
        try:
            while block := grid_out.read(self.chunk_size):
                yield block
        finally:
            grid_out.close()

    def attach(self, results: list[dict]) -> list[dict]:
        """The results, each with `artifacts`: the summaries of the artifacts of
        its (task_id, helper_id, attempt). One query per task in `results`, and
        a page of results is one task's."""
        helpers: dict[str, set[str]] = {}
        for r in results:
            helpers.setdefault(r["task_id"], set()).add(r["helper_id"])
        found: dict[tuple, list[dict]] = {}
        for task_id, helper_ids in helpers.items():
            query = {"metadata.task_id": task_id, "metadata.helper_id": {"$in": sorted(helper_ids)}}
            for doc in self.files.find(query, SUMMARY_PROJECTION).sort(ORDER):
                meta = doc["metadata"]
                found.setdefault((task_id, meta["helper_id"], meta["attempt"]), []).append(
                    _summary(doc)
                )
        return [
            dict(r, artifacts=found.get((r["task_id"], r["helper_id"], r["attempt"]), []))
            for r in results
        ]


def _summary(doc: dict) -> dict:
    return {
        "artifact_id": str(doc["_id"]),
        "name": doc["filename"],
        "size": int(doc["length"]),
        "sha256": doc["metadata"]["sha256"],
    }


def public_artifact(doc: dict) -> dict:
    meta = doc["metadata"]
    return {
        **_summary(doc),
        "task_id": meta["task_id"],
        "helper_id": meta["helper_id"],
        "attempt": meta["attempt"],
        "uploaded_at": meta["uploaded_at"],
    }


def open_upload(bucket: GridFSBucket, file_id: ObjectId, name: str) -> GridIn:
    """`bucket.open_upload_stream_with_id`, less pymongo's check of GridFS's
    own indexes at every upload: a `find_one({})` on the files and one on
    the chunks, which SecantusDB answers by reading every document (78 ms of
    its CPU an upload beside 3,000 artifacts: bench/findings.md 50). The
    stores' `ensure_indexes` made those indexes at start."""
    grid_in = bucket.open_upload_stream_with_id(file_id, name)
    # pymongo's GridIn remembers its check in `_ensured_index`, set with
    # object.__setattr__ (its own __setattr__ writes the file's fields);
    # tests/unit/test_channel_query_plans.py fails if the check comes back
    object.__setattr__(grid_in, "_ensured_index", True)
    return grid_in
