"""Inputs: files users upload for tasks to read, stored once per content.

An uploaded input is kept in a GridFS bucket of its own (`inputs`), one
file per sha256 (a unique index on `metadata.sha256`), and named by that
digest: its id is `sha256:<hex>`. Uploading the same bytes again stores
nothing. A result's artifact can be an input too, by its own id; this
store describes and serves both kinds, so a task names either the same way.

Chunks are written under a fresh file id, and the file document (the one
that carries the digest) only after the last chunk: two uploads of the same
bytes at once each write their own chunks, and the second to finish finds
the digest taken and removes its chunks (never the other's)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import datetime
from functools import cached_property
from typing import BinaryIO

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import GridFSBucket
from gridfs.errors import FileExists
from pymongo import ASCENDING
from pymongo.database import Database

from channel.artifacts import CHUNK_SIZE, ArtifactStore, open_upload, public_artifact, too_large
from serving.errors import BadRequest
from serving.grants import output_source

BUCKET = "inputs"
INPUT_ID = re.compile(r"^sha256:([0-9a-f]{64})$")


def input_id(sha256: str) -> str:
    return f"sha256:{sha256}"


class InputStore:
    def __init__(self, db: Database, artifacts: ArtifactStore, chunk_size: int = CHUNK_SIZE):
        self.db = db
        self.artifacts = artifacts
        self.files = db[f"{BUCKET}.files"]
        self.chunks = db[f"{BUCKET}.chunks"]
        self.chunk_size = chunk_size

    @cached_property
    def bucket(self) -> GridFSBucket:
        return GridFSBucket(self.db, bucket_name=BUCKET, chunk_size_bytes=self.chunk_size)

    def ensure_indexes(self) -> None:
        self.files.create_index([("metadata.sha256", ASCENDING)], unique=True, name="by_sha256")
        self.files.create_index([("filename", ASCENDING), ("uploadDate", ASCENDING)])
        self.chunks.create_index([("files_id", ASCENDING), ("n", ASCENDING)], unique=True)

    def describe(self, artifact_id: str) -> dict | None:
        """An uploaded input (`sha256:<hex>`) or a result's artifact (24 hex
        digits) by id; None if there is no such file."""
        m = INPUT_ID.match(artifact_id)
        if m:
            doc = self.files.find_one({"metadata.sha256": m.group(1)})
            return _public(doc) if doc else None
        try:
            doc = self.artifacts.files.find_one({"_id": ObjectId(artifact_id)})
        except (InvalidId, TypeError):
            return None
        return public_artifact(doc) if doc else None

    def describe_output(self, task_id: str, helper_id: str, attempt: int, name: str) -> dict | None:
        """The artifact `name` of one attempt's result (None: not stored, yet)."""
        return self.artifacts.find(
            {"task_id": task_id, "helper_id": helper_id, "attempt": attempt, "name": name}
        )

    def put(
        self, name: str, sha256: str, stream: BinaryIO, uploaded_at: datetime, max_bytes: int
    ) -> tuple[dict, bool]:
        """Stream an upload into the bucket; returns (the input, whether it
        is new). BadRequest when the bytes' digest is not `sha256`, and
        ArtifactTooLarge past `max_bytes`: either way nothing is stored."""
        uploaded_at = uploaded_at.replace(microsecond=uploaded_at.microsecond // 1000 * 1000)
        grid_in = open_upload(self.bucket, ObjectId(), name)
        digest, size = hashlib.sha256(), 0
        try:
            while block := stream.read(self.chunk_size):
                size += len(block)
                if size > max_bytes:
                    raise too_large(max_bytes)
                digest.update(block)
                grid_in.write(block)
            if digest.hexdigest() != sha256:
                raise BadRequest(
                    "the upload's bytes do not match its sha256",
                    f"sha256 given: {sha256}; of the bytes received: {digest.hexdigest()} "
                    f"({size} bytes); nothing was stored",
                )
            grid_in.metadata = {"sha256": sha256, "uploaded_at": uploaded_at}
            grid_in.close()
        except FileExists:  # the same bytes were stored while these streamed
            grid_in.abort()
            return self.describe(input_id(sha256)), False
        except BaseException:
            grid_in.abort()
            raise
        doc = {"filename": name, "length": size, "metadata": grid_in.metadata}
        return _public(doc), True

    def download(self, artifact_id: str) -> tuple[dict, Iterator[bytes]] | None:
        """An input's (or a result artifact's) description and bytes."""
        m = INPUT_ID.match(artifact_id)
        if not m:
            return self.artifacts.download(artifact_id)
        doc = self.files.find_one({"metadata.sha256": m.group(1)})
        if doc is None:
            return None
        grid_out = self.bucket.open_download_stream(doc["_id"])
        return _public(doc), self.artifacts.blocks(grid_out)


def sources(doc: dict) -> list[str]:
    """What a grant may name to reach this file: its id and, for a result's
    artifact, the attempt and name that made it."""
    found = [doc["artifact_id"]]
    if "task_id" in doc:
        found.append(output_source(doc["task_id"], doc["helper_id"], doc["attempt"], doc["name"]))
    return found


def _public(doc: dict) -> dict:
    meta = doc["metadata"]
    return {
        "artifact_id": input_id(meta["sha256"]),
        "name": doc["filename"],
        "size": int(doc["length"]),
        "sha256": meta["sha256"],
        "uploaded_at": meta["uploaded_at"],
    }
