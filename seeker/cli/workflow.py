"""What `seeker submit`, `status` and `cancel` add for work that builds on
work: inputs (uploaded files, artifacts by id, the output of a task), tasks
after tasks, and task arrays."""

from __future__ import annotations

import sys

import click

from seeker.client import SeekerClient

ARRAY_PREFIX = "arr-"


def input_options(f):
    f = click.option(
        "--array",
        metavar="N|A-B",
        help="Submit N tasks of this spec (indices 0 to N-1), or one per index of A-B; "
        "each sees SEEKER_ARRAY_INDEX.",
    )(f)
    f = click.option(
        "--after",
        "after",
        multiple=True,
        metavar="TASK_ID",
        help="Run only once this task (or every task of this array) has succeeded; "
        "repeatable. If one fails or is cancelled, this task is cancelled.",
    )(f)
    f = click.option(
        "--input-from",
        "input_from",
        multiple=True,
        metavar="TASK_ID[:DEST]",
        help="Mount what that task wrote to /output, read-only at DEST (default "
        "/input/TASK_ID); runs after it. Repeatable.",
    )(f)
    f = click.option(
        "--input-artifact",
        "input_artifacts",
        multiple=True,
        metavar="ID[:DEST]",
        help="Mount a stored file (an artifact of a result, or an uploaded input) "
        "read-only at DEST (default /input/<its name>). Repeatable.",
    )(f)
    f = click.option(
        "--input",
        "input_paths",
        multiple=True,
        metavar="PATH[:DEST]",
        help="Upload a file or directory (once: the same bytes are not sent again) and "
        "mount it read-only at DEST (default /input/<name>). Repeatable.",
    )(f)
    return f


def split_dest(value: str, option: str) -> tuple[str, str | None]:
    """`SOURCE:/dest` -> (SOURCE, /dest); a value without ':/' has no DEST."""
    source, sep, dest = value.rpartition(":/")
    if not sep:
        return value, None
    if not source:
        raise click.BadParameter(f"{value!r}: give SOURCE[:DEST]", param_hint=option)
    return source, "/" + dest


def inputs_of(
    client: SeekerClient,
    paths: tuple[str, ...],
    artifacts: tuple[str, ...],
    outputs: tuple[str, ...],
) -> list[dict]:
    """The task's `inputs`: local files uploaded (when the seeker's channel
    lacks their bytes), stored files by id, outputs of tasks."""
    inputs = []
    for value in paths:
        path, dest = split_dest(value, "--input")
        try:
            inputs.append(client.upload_input(path, dest))
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            raise click.BadParameter(str(exc), param_hint="--input") from None
    for value in artifacts:
        artifact_id, dest = split_dest(value, "--input-artifact")
        inputs.append({"artifact_id": artifact_id, **({"path": dest} if dest else {})})
    for value in outputs:
        task_id, dest = split_dest(value, "--input-from")
        inputs.append({"output_of": task_id, **({"path": dest} if dest else {})})
    return inputs


def array_text(a: dict) -> str:
    """e.g. 'array arr-5e1c0d3a9b7f: 200 tasks: 180 succeeded, 15 running, 5 pending'"""
    line = f"array {a['array_id']}: {a['size']} tasks: {a['summary']}"
    if a.get("cancelled") is not None:
        line += f" ({a['cancelled']} cancelled now)"
    return line


def is_array(an_id: str) -> bool:
    return an_id.startswith(ARRAY_PREFIX)


def wait_for_array(client: SeekerClient, array_id: str, as_json: bool) -> dict:
    """Wait until the array is done (progress on stderr); exit 0 if every
    task succeeded, else 1."""

    def progress(a: dict) -> None:
        click.echo(f"  {a['summary']}", err=True)

    return client.wait_array(array_id, on_change=None if as_json else progress)


def exit_for_array(array: dict) -> None:
    sys.exit(0 if set(array["counts"]) == {"succeeded"} else 1)
