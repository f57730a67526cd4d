"""The helper's input cache: the files tasks read, fetched from the channel
before their containers start, kept by digest under a size cap, and mounted
read-only.

Each input is cached in the form a container sees it:

    DATA_DIR/inputs/files/<sha256>     a file, as uploaded
    DATA_DIR/inputs/trees/<sha256>     a tar archive unpacked (a directory input)
    DATA_DIR/inputs/outputs/<sha256>   a task's output.tar unpacked from its output/

An input whose digest the assignment names and that is cached is used
without asking the channel; otherwise the helper describes it (with its
grant), and fetches it only when that digest is not cached. Entries in use
by a run are pinned; past the cap, the least recently used others are
removed. Counters (hits, misses, bytes fetched, evictions) say what the
cache saved."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import tarfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import requests

from helper.models import AssignmentInput
from serving.http import ApiError, Unreachable

log = logging.getLogger(__name__)

DEFAULT_CAP = 20 * 1024**3
BLOCK = 1024 * 1024
# how long a fetch keeps asking while the channel is away or an output has
# not reached it yet (its helper delivers results and artifacts on a lane of
# its own, which may trail the completion the seeker heard of): about a minute
RETRY_DELAYS = (0.5, 1, 2, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5)
OUTPUT_PREFIX = "output"  # /output comes back as a tar of output/...


class InputUnavailable(Exception):
    """An input could not be had: the message names it and says why."""


@dataclass
class Entry:
    path: Path
    size: int
    used: int  # order of last use: the lowest goes first
    pins: int = 0


class InputCache:
    def __init__(
        self,
        root: Path,
        channel,
        cap: int = DEFAULT_CAP,
        retry_delays: Iterable[float] = RETRY_DELAYS,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.root = Path(root)
        self.channel = channel  # ChannelClient: describe_input, describe_output, open_artifact
        self.cap = cap
        self.retry_delays = tuple(retry_delays)
        self.sleep = sleep
        self.hits = self.misses = self.bytes_fetched = self.evictions = 0
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}
        self._clock = 0
        self._scan()

    # --- what runs call ----------------------------------------------------------

    def acquire(self, inp: AssignmentInput) -> tuple[str, Path]:
        """The input's cache key and host path, pinned until `release`: from
        the cache when its digest is there, else fetched. InputUnavailable
        says why not."""
        form = "outputs" if inp.output else "trees" if inp.unpack else "files"
        sha256, artifact_id = inp.sha256, inp.artifact_id
        if sha256 is None:  # an output: what it is, only the channel knows
            described = self._describe(inp)
            sha256, artifact_id = described["sha256"], described["artifact_id"]
        key = f"{form}/{sha256}"
        with self._fetch_lock(key):
            if self._pin(key):
                path = self._entries[key].path
            else:
                path = self._fetch(inp, form, key, artifact_id, sha256)
        self._evict()
        return key, path

    def hold(self, sources: Iterable[str]) -> list[str]:
        """Pin the entries at these host paths (the mounts of a container an
        earlier helper process started); returns their keys, to release."""
        keys = []
        with self._lock:
            for source in sources:
                try:
                    key = Path(source).relative_to(self.root).as_posix()
                except ValueError:
                    continue
                if key in self._entries:
                    self._entries[key].pins += 1
                    keys.append(key)
        return keys

    def release(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is not None:
                    entry.pins = max(0, entry.pins - 1)
        self._evict()

    def stats(self) -> dict:
        with self._lock:
            return {
                "hits": self.hits,
                "misses": self.misses,
                "bytes_fetched": self.bytes_fetched,
                "evictions": self.evictions,
                "entries": len(self._entries),
                "bytes": sum(e.size for e in self._entries.values()),
                "cap": self.cap,
            }

    # --- the cache ---------------------------------------------------------------

    def _pin(self, key: str) -> bool:
        """A hit: pin the entry and count it (False when it is not cached)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False
            entry.pins += 1
            entry.used = self._tick()
            self.hits += 1
        _touch(entry.path)
        return True

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def _fetch_lock(self, key: str) -> threading.Lock:
        """One fetch of a digest at a time: a second run waits and then hits."""
        with self._lock:
            return self._fetching.setdefault(key, threading.Lock())

    def _evict(self) -> None:
        """Remove the least recently used entries no run holds, past the cap."""
        while True:
            with self._lock:
                total = sum(e.size for e in self._entries.values())
                idle = [(e.used, k) for k, e in self._entries.items() if e.pins == 0]
                if total <= self.cap or not idle:
                    return
                _, key = min(idle)
                entry = self._entries.pop(key)
                self.evictions += 1
            log.info("input cache: evicting %s (%d bytes)", key, entry.size)
            _remove(entry.path)

    def _scan(self) -> None:
        """What an earlier process left: entries in order of last use (their
        modification time), and no half-made ones."""
        shutil.rmtree(self.root / "tmp", ignore_errors=True)
        found = []
        for form in ("files", "trees", "outputs"):
            folder = self.root / form
            folder.mkdir(parents=True, exist_ok=True)
            for path in folder.iterdir():
                found.append((path.lstat().st_mtime, f"{form}/{path.name}", path))
        for _, key, path in sorted(found):
            self._entries[key] = Entry(path, _size(path), self._tick())

    # --- the channel ---------------------------------------------------------------

    def _describe(self, inp: AssignmentInput) -> dict:
        def ask() -> dict:
            if inp.output is not None:
                o = inp.output
                return self.channel.describe_output(
                    o.task_id, o.helper_id, o.attempt, o.name, grant=inp.grant
                )
            return self.channel.describe_input(inp.artifact_id, grant=inp.grant)

        return self._patiently(inp, ask, waits_for_404=inp.output is not None)

    def _patiently(self, inp: AssignmentInput, call: Callable[[], dict], waits_for_404: bool):
        """`call`, asked again while the channel is unreachable or busy (and,
        for an output, while it has not got it yet)."""
        delays = iter(self.retry_delays)
        while True:
            try:
                return call()
            except Unreachable as exc:
                problem = f"the channel cannot be reached: {exc}"
            except ApiError as exc:
                transient = exc.status in (408, 429) or exc.status >= 500
                if not transient and not (waits_for_404 and exc.status == 404):
                    raise InputUnavailable(_failed(inp, f"{exc.status} {exc.message}")) from None
                problem = f"{exc.status} {exc.message}"
            delay = next(delays, None)
            if delay is None:
                raise InputUnavailable(_failed(inp, f"{problem} (gave up asking)"))
            log.info("input %s: %s; asking again in %gs", inp.path, problem, delay)
            self.sleep(delay)

    def _fetch(
        self, inp: AssignmentInput, form: str, key: str, artifact_id: str, sha256: str
    ) -> Path:
        tmp = self.root / "tmp" / secrets.token_hex(8)
        tmp.mkdir(parents=True)
        try:
            blob = tmp / "blob"
            size = self._patiently(
                inp, lambda: self._download(artifact_id, inp.grant, blob, sha256), False
            )
            made = blob
            if form != "files":
                made = tmp / "tree"
                try:
                    unpack(blob, made, OUTPUT_PREFIX if form == "outputs" else None)
                except (tarfile.TarError, OSError) as exc:
                    why = f"cannot unpack it as a tar archive: {exc}"
                    raise InputUnavailable(_failed(inp, why)) from None
            readable(made)
            final = self.root / key
            os.replace(made, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        with self._lock:
            self.misses += 1
            self.bytes_fetched += size
            self._entries[key] = Entry(final, _size(final), self._tick(), pins=1)
        log.info("input %s: fetched %s (%d bytes)", inp.path, artifact_id, size)
        return final

    def _download(self, artifact_id: str, grant: str, dest: Path, sha256: str) -> int:
        digest, size = hashlib.sha256(), 0
        try:
            resp = self.channel.open_artifact(artifact_id, grant=grant)
            with resp, open(dest, "wb") as f:
                for block in resp.iter_content(BLOCK):
                    digest.update(block)
                    size += len(block)
                    f.write(block)
        except requests.RequestException as exc:
            raise Unreachable(f"the download was cut short after {size} bytes: {exc}") from exc
        if digest.hexdigest() != sha256:
            raise Unreachable(f"the bytes received ({size}) do not match sha256 {sha256}")
        return size


def unpack(archive: Path, dest: Path, strip: str | None = None) -> None:
    """Unpack a tar archive into `dest` with the tarfile "data" filter (no
    absolute paths, no way out of `dest`, no devices); with `strip`, from
    inside that top-level folder (the folder itself and anything beside it
    are left out)."""
    dest.mkdir()

    def keep(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        if strip is not None:
            name = _strip(member.name, strip)
            if not name:
                return None
            changes = {"name": name}
            if member.islnk():
                changes["linkname"] = _strip(member.linkname, strip) or member.linkname
            member = member.replace(**changes, deep=False)
        return tarfile.data_filter(member, path)

    with tarfile.open(archive) as tf:
        tf.extractall(dest, filter=keep)


def _strip(name: str, prefix: str) -> str:
    name = name.removeprefix("./")
    head, _, rest = name.partition("/")
    return rest if head == prefix else ""


def readable(path: Path) -> None:
    """Readable by the container's user whoever owns the files (a container
    keeps no capability to read past permissions): files a+r, folders a+rx."""
    if path.is_dir():
        for folder, _, files in os.walk(path):
            os.chmod(folder, os.stat(folder).st_mode | 0o555)
            for name in files:
                p = os.path.join(folder, name)
                if not os.path.islink(p):
                    os.chmod(p, os.stat(p).st_mode | 0o444)
    os.chmod(path, os.stat(path).st_mode | (0o555 if path.is_dir() else 0o444))


def _failed(inp: AssignmentInput, why: str) -> str:
    return f"cannot fetch input {inp.path} ({inp.source}): {why}"


def _size(path: Path) -> int:
    if not path.is_dir():
        return path.lstat().st_size
    return sum(
        os.lstat(os.path.join(folder, name)).st_size
        for folder, _, files in os.walk(path)
        for name in files
    )


def _touch(path: Path) -> None:
    try:
        os.utime(path, follow_symlinks=False)
    except OSError:
        pass


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
