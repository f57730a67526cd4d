"""A container's stdout and stderr as the helper keeps them: Docker's
multiplexed log frames read off the raw stream, each stream capped in
memory with the whole of it spilled to a file once cut. Used by
helper/runtime.py."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from pathlib import Path


class LogStream:
    """One log stream as it is read: the head up to the cap, whether it was
    cut, the whole stream in a spill file once cut (when there is a spill
    folder), and the sha256 of all of it that was read."""

    def __init__(self, name: str, cap: int, spill_dir: Path | None):
        self.name, self.cap, self.spill_dir = name, cap, spill_dir
        self.parts: list[bytes] = []
        self.size = 0
        self.digest = hashlib.sha256()
        self.spill: Path | None = None
        self._file = None
        self.done = False  # cut with nowhere to spill: the rest is not read

    @property
    def cut(self) -> bool:
        return self.size > self.cap

    def add(self, chunk: bytes) -> None:
        if self.done:
            return
        self.digest.update(chunk)
        if self.size <= self.cap:
            self.parts.append(chunk)
        self.size += len(chunk)
        if self.size <= self.cap:
            return
        if self.spill_dir is None:
            self.done = True
            return
        if self._file is None:
            self.spill_dir.mkdir(parents=True, exist_ok=True)
            self.spill = self.spill_dir / f"{self.name}.log"
            self._file = open(self.spill, "wb")  # noqa: SIM115 (closed in close())
            self._file.writelines(self.parts[:-1])
        self._file.write(chunk)

    def head(self) -> bytes:
        return b"".join(self.parts)[: self.cap]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def log_frames(raw) -> Iterator[tuple[int, bytes]]:
    """(stream id, bytes) of a multiplexed log stream (a container without a
    TTY): each frame is an 8-byte header (stream id, 3 zero bytes, length,
    big-endian) and its payload. (The SDK's reader of such a response,
    `_multiplexed_response_stream_helper`, drops the stream id; its
    `frames_iter` keeps it but reads the raw socket, which waits for ever
    on a chunked, kept-alive logs response.)"""
    while True:
        header = read_exactly(raw, 8)
        if len(header) < 8:
            return
        stream_id, length = struct.unpack(">BxxxL", header)
        if length:
            data = read_exactly(raw, length)
            if not data:
                return
            yield stream_id, data


def read_exactly(raw, n: int) -> bytes:
    parts, left = [], n
    while left:
        data = raw.read(left)
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)
