"""Image references, normalised as Docker normalises them, so that the image
a task names and the images a helper has compare equal when Docker would
run the same image: `busybox`, `busybox:latest`, `docker.io/library/busybox`
and `index.docker.io/library/busybox:latest` are all
`docker.io/library/busybox:latest`. Pure functions, used by the helper (to
report what it has) and by the seeker (to store reports and to score)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
MAX_IMAGES = 1000  # references a helper reports, at most
MAX_REFERENCE = 512  # characters of one reference, at most
UNTAGGED = "<none>"  # what Docker lists for an image without a tag or digest


@lru_cache(maxsize=4096)
def normalise_image(reference: str) -> str:
    """`[domain/]path[:tag][@digest]` in Docker's full form: the domain
    spelt out (docker.io unless the first component has a '.' or a ':', is
    'localhost' or has a capital), official images under `library/`, and
    `:latest` when neither a tag nor a digest is given. With a digest the
    tag is dropped: Docker runs the digest, whatever the tag says."""
    name, _, digest = reference.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    tag = ""
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    first, sep, rest = name.partition("/")
    is_domain = "." in first or ":" in first or first == "localhost" or first != first.lower()
    domain, path = (first, rest) if sep and is_domain else (DEFAULT_DOMAIN, name)
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    if digest:
        return f"{domain}/{path}@{digest}"
    return f"{domain}/{path}:{tag or 'latest'}"


def normalised_images(references: Iterable[str]) -> list[str]:
    """Each reference normalised, in order, each once, at most MAX_IMAGES;
    Docker's placeholders for untagged images (`<none>:<none>`) and
    references longer than MAX_REFERENCE once normalised left out."""
    seen: dict[str, None] = {}  # a dict keeps the order
    for reference in references:
        if not reference or UNTAGGED in reference:
            continue
        normalised = normalise_image(reference)
        if len(normalised) <= MAX_REFERENCE:
            seen[normalised] = None
            if len(seen) == MAX_IMAGES:
                break
    return list(seen)


def local_images(listing: Iterable[dict]) -> list[str]:
    """The references of the images in Docker's image list (`GET /images/json`,
    newest first): each image's tags (`busybox:1.36`) and digests
    (`busybox@sha256:...`), normalised; the newest MAX_IMAGES when there
    are more."""
    return normalised_images(
        ref
        for image in listing
        for ref in (*(image.get("RepoTags") or ()), *(image.get("RepoDigests") or ()))
    )
