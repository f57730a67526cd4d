"""The helper's run policy: which images run and which host paths mount."""

from __future__ import annotations

import pytest

from helper.policy import image_allowed, mount_allowed, refusal


@pytest.mark.parametrize(
    ("image", "patterns", "allowed"),
    [
        ("anything:1", [], True),
        ("seeker-demo:latest", ["seeker-demo:*"], True),
        ("seeker-demo", ["seeker-demo:*"], True),  # untagged runs as :latest
        ("seeker-demo", ["seeker-demo:latest"], True),
        ("seeker-other", ["seeker-demo:*"], False),
        ("registry.example.com:5000/team/app:2", ["registry.example.com:5000/team/*"], True),
        ("registry.example.com:5000/team/app", ["registry.example.com:5000/team/*:*"], True),
        ("evil.example.com/team/app:2", ["registry.example.com/team/*"], False),
    ],
)
def test_image_allowed(image, patterns, allowed):
    assert image_allowed(image, patterns) is allowed


def test_mounts_only_inside_allowed_directories(tmp_path):
    allowed = tmp_path / "data"
    (allowed / "sub").mkdir(parents=True)
    (tmp_path / "data-other").mkdir()
    assert mount_allowed(str(allowed), [str(allowed)])
    assert mount_allowed(str(allowed / "sub"), [str(allowed)])
    assert not mount_allowed(str(tmp_path / "data-other"), [str(allowed)])  # not a prefix match
    assert not mount_allowed(str(allowed / ".." / "data-other"), [str(allowed)])
    assert not mount_allowed(str(allowed), [])  # none allowed by default


def test_a_symlink_out_of_an_allowed_directory_is_refused(tmp_path):
    allowed = tmp_path / "data"
    allowed.mkdir()
    (allowed / "escape").symlink_to("/etc")
    assert not mount_allowed(str(allowed / "escape"), [str(allowed)])


def test_refusal_names_what_is_refused(tmp_path):
    assert refusal("x:1", [], ["y:*"], []) == (
        "image 'x:1' is not allowed on this helper (allowed: y:*)"
    )
    why = refusal("x:1", [{"source": "/etc"}], [], [])
    assert why == "mount of '/etc' is not allowed on this helper (allowed: no host paths)"
    assert refusal("x:1", [], [], []) is None
