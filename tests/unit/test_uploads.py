"""What a client uploads as an input: a directory packed the same way every
time (so the same files are sent once), and the CLI's SOURCE[:DEST]."""

from __future__ import annotations

import os
import tarfile

import click
import pytest

from seeker.cli.tables import task_summary
from seeker.cli.workflow import split_dest
from seeker.uploads import packed


def make_tree(root):
    (root / "sub").mkdir(parents=True)
    (root / "b.txt").write_text("B")
    (root / "sub" / "a.txt").write_text("A")
    for p in (root / "b.txt", root / "sub" / "a.txt", root / "sub"):
        os.utime(p, (1_700_000_000, 1_700_000_000))


def test_a_directory_packs_to_the_same_bytes_every_time(tmp_path):
    make_tree(tmp_path / "data")
    with packed(tmp_path / "data") as (archive, name, sha256, is_dir):
        first = archive.read_bytes()
        assert (name, is_dir) == ("data.tar", True)
        with tarfile.open(archive) as tf:
            assert tf.getnames() == ["b.txt", "sub", "sub/a.txt"]
            assert {m.uname for m in tf.getmembers()} == {""}
    with packed(tmp_path / "data") as (archive, _, again, _):
        assert archive.read_bytes() == first and again == sha256
    assert not archive.exists()  # the packed copy is gone after the block


def test_a_file_is_uploaded_as_it_is(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"abc")
    with packed(tmp_path / "w.bin") as (path, name, sha256, is_dir):
        assert (path, name, is_dir) == (tmp_path / "w.bin", "w.bin", False)
        assert sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    with pytest.raises(FileNotFoundError), packed(tmp_path / "nope"):
        pass


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("weights.bin", ("weights.bin", None)),
        ("weights.bin:/models/w.bin", ("weights.bin", "/models/w.bin")),
        ("sha256:" + "a" * 64, ("sha256:" + "a" * 64, None)),
        ("sha256:" + "a" * 64 + ":/w", ("sha256:" + "a" * 64, "/w")),
        ("/data/set:/input/set", ("/data/set", "/input/set")),
    ],
)
def test_source_and_dest(value, expected):
    assert split_dest(value, "--input") == expected


def test_a_dest_without_a_source_is_refused():
    with pytest.raises(click.BadParameter):
        split_dest(":/x", "--input")


def test_the_summary_shows_array_dependencies_and_inputs():
    task = {
        "task_id": "t2",
        "state": "pending",
        "image": "busybox",
        "array_id": "arr-1",
        "array_index": 3,
        "after": ["t1"],
        "wait_reason": "waiting for 1 task(s) to succeed: t1",
        "inputs": [
            {
                "artifact_id": "sha256:" + "5" * 64,
                "path": "/input/w.bin",
                "name": "w.bin",
                "size": 6,
            },
            {"output_of": "t1", "path": "/weights"},
        ],
    }
    text = task_summary(task)
    assert "array     arr-1, index 3" in text
    assert "after     t1" in text
    assert "inputs    /input/w.bin <- sha256:555555555555 (w.bin, 6B)" in text
    assert "          /weights <- /output of task t1" in text
    assert "waiting   waiting for 1 task(s) to succeed: t1" in text
