"""What a client uploads as a task's input: a file as it is, or a
directory packed as a tar archive the same way every time (sorted, no
owners), so that the same files make the same bytes and are sent once."""

from __future__ import annotations

import contextlib
import hashlib
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

BLOCK = 1024 * 1024


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def pack_directory(folder: Path, archive: Path) -> None:
    """Every file, folder and link under `folder`, by name, relative to it,
    with modes and times kept and owners left out."""

    def anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT) as tf:
        for path in sorted(folder.rglob("*")):
            tf.add(
                path, arcname=path.relative_to(folder).as_posix(), recursive=False, filter=anonymous
            )


@contextlib.contextmanager
def packed(path: Path) -> Iterator[tuple[Path, str, str, bool]]:
    """(the file to upload, its name, its sha256, whether it is a packed
    directory); a packed directory lives until the block ends."""
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    if not path.is_dir():
        yield path, path.name, sha256_of(path), False
        return
    name = f"{path.resolve().name or 'root'}.tar"
    with tempfile.TemporaryDirectory(prefix="seeker-input-") as tmp:
        archive = Path(tmp) / name
        pack_directory(path, archive)
        yield archive, name, sha256_of(archive), True
