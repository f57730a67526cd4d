"""What a helper's operator allows tasks to do: which images run, which host
paths may be mounted. Pure functions, used by the helper (to refuse) and by
the seeker's scheduler (to not even try)."""

from __future__ import annotations

import os
from fnmatch import fnmatchcase

SAFE_CAPABILITIES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "NET_BIND_SERVICE",
)


def image_allowed(image: str, patterns: list[str] | tuple[str, ...]) -> bool:
    """No patterns: every image. Else the image must match one (fnmatch, e.g.
    'registry.example.com/team/*' or 'seeker-demo:*'); an image named without
    a tag is matched as Docker runs it, with ':latest'."""
    if not patterns:
        return True
    last = image.rsplit("/", 1)[-1]
    full = image if ":" in last or "@" in last else f"{image}:latest"
    return any(fnmatchcase(image, p) or fnmatchcase(full, p) for p in patterns)


def mount_allowed(source: str, allowed: list[str] | tuple[str, ...]) -> bool:
    """The host path must lie inside one of the allowed directories (after
    resolving '..' and symbolic links). No allowed directories: no mounts."""
    real = os.path.realpath(source)
    for base in allowed:
        root = os.path.realpath(base)
        if real == root or real.startswith(root.rstrip("/") + "/"):
            return True
    return False


def refusal(
    image: str, mounts: list[dict], images: list[str], allowed_mounts: list[str]
) -> str | None:
    """Why this helper will not run the task, or None."""
    if not image_allowed(image, images):
        return f"image {image!r} is not allowed on this helper (allowed: {', '.join(images)})"
    for m in mounts:
        if not mount_allowed(m["source"], allowed_mounts):
            where = ", ".join(allowed_mounts) or "no host paths"
            return f"mount of {m['source']!r} is not allowed on this helper (allowed: {where})"
    return None
