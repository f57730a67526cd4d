"""The helper's input cache with a fake channel: fetched once per digest,
unpacked safely, evicted least recently used past its cap (never while a
run holds it), kept across restarts, and failures that name the input.
Executor: the `fetching` step, read-only mounts, the array index."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from pathlib import Path

import pytest

from helper.inputs import InputCache, InputUnavailable, unpack
from helper.models import AssignmentInput
from serving.http import ApiError, Unreachable
from tests.unit.test_executor import FakeRuntime, assignment, make, results, wait_done

GRANT = "grant1~t1~1~h1~" + "0" * 64


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def tar_of(files: dict[str, bytes], prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        if prefix:
            info = tarfile.TarInfo(prefix)
            info.type = tarfile.DIRTYPE
            tf.addfile(info)
        for name, body in files.items():
            info = tarfile.TarInfo(f"{prefix}/{name}" if prefix else name)
            info.size = len(body)
            info.mode = 0o600  # not readable by others: the cache makes it so
            tf.addfile(info, io.BytesIO(body))
    return buf.getvalue()


class Response:
    def __init__(self, body: bytes):
        self.body = body

    def iter_content(self, size):
        for i in range(0, len(self.body), size):
            yield self.body[i : i + size]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class FakeChannel:
    """Files by id; `failures` are raised by the next calls, in order."""

    def __init__(self, files: dict[str, bytes] | None = None):
        self.files = dict(files or {})
        self.outputs: dict[tuple, str] = {}
        self.failures: list[Exception] = []
        self.downloads: list[str] = []
        self.described: list = []
        self.grants: list[str] = []
        self.gate: threading.Event | None = None

    def _fail(self):
        if self.failures:
            raise self.failures.pop(0)

    def describe_input(self, artifact_id, grant=None):
        self.grants.append(grant)
        self.described.append(artifact_id)
        self._fail()
        body = self.files[artifact_id]
        return {"artifact_id": artifact_id, "sha256": sha(body), "size": len(body)}

    def describe_output(self, task_id, helper_id, attempt, name, grant=None):
        self.grants.append(grant)
        self.described.append((task_id, helper_id, attempt, name))
        self._fail()
        artifact_id = self.outputs.get((task_id, helper_id, attempt, name))
        if artifact_id is None:
            raise ApiError(404, "no such artifact (yet)")
        return self.describe_input(artifact_id, grant)

    def open_artifact(self, artifact_id, grant=None):
        self.grants.append(grant)
        self._fail()
        if self.gate is not None:
            assert self.gate.wait(10)
        self.downloads.append(artifact_id)
        return Response(self.files[artifact_id])


def file_input(body: bytes, path="/input/w.bin", **kw) -> AssignmentInput:
    return AssignmentInput(
        path=path, artifact_id=f"sha256:{sha(body)}", sha256=sha(body), grant=GRANT, **kw
    )


def output_input(path="/input/train") -> AssignmentInput:
    output = {"task_id": "train", "helper_id": "h0", "attempt": 1, "name": "output.tar"}
    return AssignmentInput(path=path, output=output, grant=GRANT)


@pytest.fixture
def channel() -> FakeChannel:
    return FakeChannel()


def cache_of(tmp_path: Path, channel, cap=10**6, delays=(0, 0)) -> InputCache:
    return InputCache(tmp_path / "inputs", channel, cap, retry_delays=delays, sleep=lambda s: None)


def test_a_file_is_fetched_once_then_found_by_its_digest(tmp_path, channel):
    body = b"weights" * 100
    channel.files[f"sha256:{sha(body)}"] = body
    cache = cache_of(tmp_path, channel)
    key, path = cache.acquire(file_input(body))
    assert path.read_bytes() == body and path.stat().st_mode & 0o444 == 0o444
    cache.release([key])
    key2, path2 = cache.acquire(file_input(body, path="/elsewhere"))
    assert (key2, path2) == (key, path)
    assert channel.downloads == [f"sha256:{sha(body)}"]  # the second asked nothing
    assert channel.described == []  # its digest was in the assignment
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["bytes_fetched"]) == (1, 1, len(body))
    assert set(channel.grants) == {GRANT}


def test_a_restarted_helper_keeps_what_it_fetched(tmp_path, channel):
    body = b"kept"
    channel.files[f"sha256:{sha(body)}"] = body
    cache_of(tmp_path, channel).acquire(file_input(body))
    again = cache_of(tmp_path, channel)
    again.acquire(file_input(body))
    assert len(channel.downloads) == 1
    assert again.stats()["hits"] == 1


def test_an_output_is_found_through_the_channel_and_unpacked_from_output(tmp_path, channel):
    archive = tar_of({"weights.txt": b"0.93\n", "sub/more.txt": b"x"}, prefix="output")
    channel.files["a" * 24] = archive
    channel.outputs[("train", "h0", 1, "output.tar")] = "a" * 24
    channel.failures = [ApiError(404, "no such artifact (yet)")]  # not delivered yet: asks again
    cache = cache_of(tmp_path, channel)
    _, path = cache.acquire(output_input())
    assert (path / "weights.txt").read_text() == "0.93\n"
    assert (path / "sub" / "more.txt").stat().st_mode & 0o444 == 0o444
    assert not (path / "output").exists()
    # a second run describes it again (the channel knows its digest) but fetches nothing
    cache.acquire(output_input(path="/other"))
    assert channel.downloads == ["a" * 24]
    assert cache.stats()["hits"] == 1


def test_a_directory_input_is_unpacked_as_is(tmp_path, channel):
    archive = tar_of({"a.txt": b"A", "b/c.txt": b"C"})
    channel.files[f"sha256:{sha(archive)}"] = archive
    _, path = cache_of(tmp_path, channel).acquire(file_input(archive, unpack=True))
    assert (path / "a.txt").read_bytes() == b"A" and (path / "b" / "c.txt").read_bytes() == b"C"


def test_unpacking_keeps_every_member_inside(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "evil.tar").write_bytes(buf.getvalue())
    with pytest.raises(tarfile.TarError):
        unpack(tmp_path / "evil.tar", tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_past_the_cap_the_least_recently_used_idle_entry_goes(tmp_path, channel):
    bodies = [bytes([i]) * 400 for i in range(3)]
    for b in bodies:
        channel.files[f"sha256:{sha(b)}"] = b
    cache = cache_of(tmp_path, channel, cap=1000)
    k0, p0 = cache.acquire(file_input(bodies[0]))
    k1, _ = cache.acquire(file_input(bodies[1]))
    cache.release([k1])
    cache.acquire(file_input(bodies[2]))  # 1200 bytes: k0 is held, so k1 goes
    assert cache.stats()["evictions"] == 1
    assert p0.exists() and cache.stats()["bytes"] == 800
    cache.release([k0])
    k3, _ = cache.acquire(file_input(bodies[1]))  # fetched again; k0 is now the oldest idle
    assert channel.downloads.count(f"sha256:{sha(bodies[1])}") == 2
    assert not p0.exists()
    assert cache.stats()["evictions"] == 2


def test_two_runs_needing_the_same_input_at_once_fetch_it_once(tmp_path, channel):
    body = b"big" * 1000
    channel.files[f"sha256:{sha(body)}"] = body
    channel.gate = threading.Event()
    cache = cache_of(tmp_path, channel)
    got = []
    threads = [
        threading.Thread(target=lambda: got.append(cache.acquire(file_input(body))))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    channel.gate.set()
    for t in threads:
        t.join(10)
    assert len(got) == 2 and got[0] == got[1]
    assert len(channel.downloads) == 1
    assert (cache.stats()["hits"], cache.stats()["misses"]) == (1, 1)


@pytest.mark.parametrize(
    ("failures", "message"),
    [
        ([ApiError(403, "the grant does not cover this input")], "403 the grant does not cover"),
        ([Unreachable("refused")] * 3, "the channel cannot be reached: refused (gave up asking)"),
    ],
)
def test_a_failed_fetch_names_the_input_and_why(tmp_path, channel, failures, message):
    body = b"w"
    channel.files[f"sha256:{sha(body)}"] = body
    channel.failures = list(failures)
    cache = cache_of(tmp_path, channel, delays=(0, 0))
    with pytest.raises(InputUnavailable) as err:
        cache.acquire(file_input(body))
    assert str(err.value).startswith(f"cannot fetch input /input/w.bin (sha256:{sha(body)}): ")
    assert message in str(err.value)
    assert cache.stats()["entries"] == 0
    assert list((tmp_path / "inputs" / "tmp").iterdir()) == []


def test_bytes_that_do_not_match_their_digest_are_not_kept(tmp_path, channel):
    body = b"right"
    channel.files[f"sha256:{sha(body)}"] = b"wrong"
    cache = cache_of(tmp_path, channel, delays=(0,))
    with pytest.raises(InputUnavailable, match="do not match sha256"):
        cache.acquire(file_input(body))
    assert cache.stats()["entries"] == 0


@pytest.mark.parametrize("path", ["relative", "/output", "/output/x", "/a/../b", "/a/", "/", "//x"])
def test_an_input_path_must_be_absolute_clean_and_not_output(path):
    with pytest.raises(ValueError):
        AssignmentInput(path=path, artifact_id="x", grant=GRANT)


# --- the executor --------------------------------------------------------------------


def test_inputs_are_fetched_as_a_step_of_their_own_and_mounted_read_only(tmp_path, channel):
    body = b"weights"
    channel.files[f"sha256:{sha(body)}"] = body
    reports = []
    runtime = FakeRuntime()
    ex, box = make(
        runtime, report=lambda t, e: reports.append(e["state"]), inputs=cache_of(tmp_path, channel)
    )
    a = assignment(inputs=[file_input(body)], array_id="arr-1", array_index=7)
    ex.submit(a)
    wait_done(ex, a.key)
    assert reports == ["fetching", "running"]
    spec = runtime.specs[0]
    source = str(tmp_path / "inputs" / "files" / sha(body))
    assert spec.mounts == [{"source": source, "target": "/input/w.bin", "read_only": True}]
    assert spec.env["SEEKER_ARRAY_INDEX"] == "7" and spec.env["SEEKER_ARRAY_ID"] == "arr-1"
    assert ex.inputs.stats()["entries"] == 1
    assert ex.inputs._entries[f"files/{sha(body)}"].pins == 0  # released after the run


def test_an_input_that_cannot_be_had_is_a_task_error_and_no_container(tmp_path, channel):
    runtime = FakeRuntime()
    ex, box = make(runtime, inputs=cache_of(tmp_path, channel))
    channel.failures = [ApiError(404, "no such artifact")]
    a = assignment(inputs=[file_input(b"missing")])
    ex.submit(a)
    wait_done(ex, a.key)
    [result] = results(box)
    assert result["status"] == "error"
    assert result["error"].startswith("cannot fetch input /input/w.bin (sha256:")
    assert runtime.specs == [] and ex.running() == []


def test_a_task_without_an_array_sees_no_array_variables():
    runtime = FakeRuntime()
    ex, _ = make(runtime)
    a = assignment()
    ex.submit(a)
    wait_done(ex, a.key)
    assert "SEEKER_ARRAY_INDEX" not in runtime.specs[0].env


def test_a_restarted_helper_keeps_the_inputs_of_the_containers_it_takes_over(tmp_path, channel):
    bodies = [b"a" * 600, b"b" * 600]
    for b in bodies:
        channel.files[f"sha256:{sha(b)}"] = b
    first = cache_of(tmp_path, channel, cap=1000)
    k0, p0 = first.acquire(file_input(bodies[0]))
    # a new helper process: the container still mounts p0
    cache = cache_of(tmp_path, channel, cap=1000)
    assert cache.hold([str(p0), "/somewhere/else"]) == [k0]
    cache.acquire(file_input(bodies[1]))  # past the cap, but p0 is held
    assert p0.exists() and cache.stats()["evictions"] == 0
    cache.release([k0])
    assert not p0.exists() and cache.stats()["evictions"] == 1
