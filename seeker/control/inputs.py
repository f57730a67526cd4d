"""A task's inputs on the seeker's side: checked and described when it is
submitted (through the channel's API), given to the helper in each
assignment with a grant per input, and the uploads the seeker passes on to
the channel for users."""

from __future__ import annotations

import posixpath
from typing import BinaryIO

from seeker.models import TaskSpec
from serving import grants
from serving.errors import ApiProblem, InvalidInput, Unavailable
from serving.http import ApiError, Unreachable

OUTPUT_NAME = "output.tar"  # what the helper makes of a task's /output


class Sized:
    """A request body of known length, read as it is sent (so the seeker
    passes an upload on without holding it, and with its Content-Length)."""

    def __init__(self, stream: BinaryIO, length: int):
        self.stream, self.length = stream, length

    def __len__(self) -> int:
        return self.length

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size)


def passed_on(exc: ApiError | Unreachable, what: str) -> ApiProblem:
    """The channel's answer to a request the seeker made for a user."""
    if isinstance(exc, Unreachable):
        return Unavailable("the channel cannot be reached", str(exc))
    if exc.status >= 500 or exc.status in (401, 403):  # the channel's own trouble, not the user's
        return Unavailable(f"the channel refused the {what}", str(exc))
    problem = ApiProblem(exc.message, exc.detail)
    problem.status = exc.status
    return problem


class InputBroker:
    """`channel`: a ChannelClient with the user token."""

    def __init__(self, channel):
        self.channel = channel

    def upload(self, name: str, sha256: str, body: Sized) -> tuple[dict, bool]:
        """The stored input, and whether these bytes are new to the channel."""
        self._needs_channel(name)
        try:
            return self.channel.upload_input(name, sha256, body)
        except (ApiError, Unreachable) as exc:
            raise passed_on(exc, "upload") from None

    def describe(self, artifact_id: str) -> dict:
        self._needs_channel(artifact_id)
        try:
            return self.channel.describe_input(artifact_id)
        except (ApiError, Unreachable) as exc:
            raise passed_on(exc, "query") from None

    def resolve(self, spec: TaskSpec) -> list[dict]:
        """The task's inputs as stored with it: each artifact described by
        the channel (its name, sha256 and size; a 422 naming the input when
        there is no such file), each given its path."""
        resolved = []
        for i, inp in enumerate(spec.inputs):
            entry = inp.model_dump(mode="json", exclude={"name", "sha256", "size"})
            if inp.artifact_id is not None:
                found = self._find(i, inp.artifact_id)
                entry.update(name=found["name"], sha256=found["sha256"], size=found["size"])
                entry["path"] = inp.path or default_path(found["name"], inp.unpack)
            else:
                entry.update(name=OUTPUT_NAME, path=inp.path or f"/input/{inp.output_of}")
            resolved.append(entry)
        check_paths(resolved, [m.target for m in spec.mounts])
        return resolved

    def _needs_channel(self, what: str) -> None:
        if self.channel is None:
            raise Unavailable("the seeker has no channel to keep inputs in", what)

    def _find(self, index: int, artifact_id: str) -> dict:
        self._needs_channel(artifact_id)
        try:
            return self.channel.describe_input(artifact_id)
        except ApiError as exc:
            if exc.status == 404:
                raise InvalidInput(
                    f"invalid field(s): inputs.{index}.artifact_id",
                    [
                        {
                            "field": f"inputs.{index}.artifact_id",
                            "message": f"no uploaded input or artifact has id {artifact_id} "
                            "(upload a file with POST /api/v1/inputs, or name a result's "
                            "artifact_id)",
                        }
                    ],
                ) from None
            raise passed_on(exc, "query") from None
        except Unreachable as exc:
            raise passed_on(exc, "query") from None


def default_path(name: str, unpack: bool) -> str:
    base = posixpath.basename(name)
    if unpack and base.endswith(".tar") and len(base) > 4:
        base = base[:-4]
    return f"/input/{base}"


def check_paths(inputs: list[dict], mount_targets: list[str]) -> None:
    """Two inputs (or an input and a mount) at one path: a 422."""
    seen = set(mount_targets)
    for i, entry in enumerate(inputs):
        if entry["path"] in seen:
            field = f"inputs.{i}.path"
            message = f"{entry['path']} is taken by another input or mount"
            raise InvalidInput(f"invalid field(s): {field}", [{"field": field, "message": message}])
        seen.add(entry["path"])


def assignment_inputs(task: dict) -> list[dict]:
    """The inputs as a helper gets them (without grants): an artifact with
    its digest, or the output of the run that decided a task this one ran
    after (known once that task succeeded: `released_by`)."""
    released = {r["task_id"]: r for r in task.get("released_by", [])}
    out = []
    for inp in task["spec"].get("inputs", []):
        entry = {"path": inp["path"], "unpack": inp.get("unpack", False)}
        if inp.get("artifact_id"):
            entry.update(artifact_id=inp["artifact_id"], sha256=inp.get("sha256"))
        else:
            source = released[inp["output_of"]]
            entry["output"] = {
                "task_id": source["task_id"],
                "helper_id": source["helper_id"],
                "attempt": source["attempt"],
                "name": OUTPUT_NAME,
            }
        out.append(entry)
    return out


def with_grants(assignment: dict, key: bytes) -> dict:
    """The assignment with the seeker's grant for each of its inputs, good
    for that input, this task, this helper and this attempt only."""
    holder = (assignment["task_id"], assignment["helper_id"], assignment["attempt"])
    inputs = []
    for inp in assignment.get("inputs", []):
        if "output" in inp:
            o = inp["output"]
            source = grants.output_source(o["task_id"], o["helper_id"], o["attempt"], o["name"])
        else:
            source = inp["artifact_id"]
        inputs.append({**inp, "grant": grants.sign(key, source, *holder)})
    return {**assignment, "inputs": inputs}
