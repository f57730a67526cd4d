"""The `seeker` command: servers (start, up) and the user commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from seeker.cli import events, servers
from seeker.cli.common import api_errors, client_options, connect, emit
from seeker.cli.tables import helpers_table, results_table, task_summary, tasks_table
from seeker.cli.workflow import (
    array_text,
    exit_for_array,
    input_options,
    inputs_of,
    is_array,
    wait_for_array,
)
from seeker.models import AssignmentState, Placement, TaskState
from serving.cli import parse_pairs

EXIT_NOT_SUCCEEDED = 1


@click.group()
def main():
    """Seeker: run Docker workloads on a fleet of (GPU) hosts."""


main.add_command(servers.start)
main.add_command(servers.up)
main.add_command(events.events)


# --- user commands -----------------------------------------------------------


@main.command()
@client_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--cpus", type=float, help="CPUs the task needs (CPU quota).")
@click.option("--memory", help="Memory limit, e.g. 512m or 4g.")
@click.option("--gpus", type=float, help="Whole GPUs (2), or a share of one GPU (0.5, 0.25).")
@click.option(
    "--gpu-memory", help="Free memory each GPU must have, e.g. 16g (a share reserves it)."
)
@click.option("--gpu-model", help="GPU name or MIG profile contains this, e.g. H100, 3g.20gb.")
@click.option("--min-cuda", metavar="VERSION", help="CUDA the driver supports, at least: 12.4.")
@click.option(
    "--min-compute-capability", metavar="VERSION", help="GPU compute capability, at least: 8.0."
)
@click.option("--timeout", type=float, help="Seconds before the container is stopped.")
@click.option("--max-attempts", type=int, help="Runs per replica before a failing task gives up.")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@click.option(
    "--constraint",
    "constraints",
    multiple=True,
    metavar="LABEL=VALUE",
    help="Run only on helpers with this label (repeatable).",
)
@click.option(
    "--placement",
    type=click.Choice([p.value for p in Placement]),
    help="Spread over idle helpers (default) or pack busy ones first.",
)
@click.option("--replicas", type=click.IntRange(1), help="Run on this many distinct helpers.")
@click.option(
    "--policy",
    type=click.Choice(["first", "quorum", "all"]),
    help="Which replica's result counts (default: first success).",
)
@click.option(
    "--quorum",
    type=click.IntRange(1),
    help="quorum: identical outputs needed (default: a majority).",
)
@click.option(
    "--max-replicas",
    type=click.IntRange(1),
    help="quorum: most replicas ever sent when results disagree.",
)
@click.option(
    "--keep-others",
    is_flag=True,
    help="first: let the other replicas finish instead of cancelling them.",
)
@click.option(
    "--min-helpers", type=click.IntRange(0), help="Wait until this many helpers can take the task."
)
@click.option(
    "--pull",
    type=click.Choice(["always", "if-missing", "never"]),
    help="When the helper pulls the image (default: if-missing).",
)
@click.option("--name", help="A name for the task.")
@input_options
@click.option("--wait", is_flag=True, help="Wait for the end; exit with the container's code.")
@api_errors
def submit(
    seeker_url,
    token,
    ca_cert,
    as_json,
    image,
    command,
    cpus,
    memory,
    gpus,
    gpu_memory,
    gpu_model,
    min_cuda,
    min_compute_capability,
    timeout,
    max_attempts,
    env,
    constraints,
    placement,
    replicas,
    policy,
    quorum,
    max_replicas,
    keep_others,
    min_helpers,
    pull,
    name,
    input_paths,
    input_artifacts,
    input_from,
    after,
    array,
    wait,
):
    """Run IMAGE (options first, then -- and the command).

    \b
    seeker submit --wait busybox -- echo hello
    seeker submit --replicas 3 --policy quorum --quorum 2 --wait IMAGE -- ./simulate
    seeker submit --input weights.bin --after TASK_ID IMAGE -- ./evaluate /input/weights.bin
    seeker submit --array 100 IMAGE -- sh -c './sweep $SEEKER_ARRAY_INDEX'
    """
    if gpus is not None and gpus.is_integer():
        gpus = int(gpus)  # 2, not 2.0
    asked = {"cpus": cpus, "memory": memory, "gpus": gpus, "gpu_memory": gpu_memory}
    asked.update(
        gpu_model=gpu_model, min_cuda=min_cuda, min_compute_capability=min_compute_capability
    )
    resources = {k: v for k, v in asked.items() if v}
    spec: dict = {
        "env": parse_pairs(env, "--env"),
        "resources": resources,
        "constraints": parse_pairs(constraints, "--constraint"),
    }
    chosen = {
        "kind": policy,
        "quorum": quorum,
        "max_replicas": max_replicas,
        "cancel_rest": False if keep_others else None,
    }
    if any(v is not None for v in chosen.values()):
        spec["policy"] = {k: v for k, v in chosen.items() if v is not None}
    for key, value in (
        ("timeout", timeout),
        ("max_attempts", max_attempts),
        ("name", name),
        ("placement", placement),
        ("replicas", replicas),
        ("min_helpers", min_helpers),
        ("pull", pull),
    ):
        if value is not None:
            spec[key] = value
    client = connect(seeker_url, token, ca_cert)
    spec["inputs"] = inputs_of(client, input_paths, input_artifacts, input_from)
    spec["after"] = list(after)
    if array is not None:
        indices = int(array) if array.isdigit() else array
        made = client.submit_array(image, list(command), array=indices, **spec)
        if not wait:
            emit(made, as_json, lambda a: a["array_id"])
            return
        if not as_json:
            click.echo(f"array {made['array_id']} submitted ({made['size']} tasks)", err=True)
        done = wait_for_array(client, made["array_id"], as_json)
        emit(done, as_json, array_text)
        exit_for_array(done)
    task = client.submit(image, list(command), **spec)
    if not wait:
        emit(task, as_json, lambda t: t["task_id"])
        return
    if not as_json:
        click.echo(f"task {task['task_id']} submitted", err=True)
    task = client.wait(task["task_id"], on_change=None if as_json else _progress)
    results = client.results(task["task_id"])
    emit(
        {"task": task, "results": results},
        as_json,
        lambda d: task_summary(d["task"]) + "\n\n" + results_table(d["results"], logs=True),
    )
    sys.exit(exit_code(task))


def _progress(task: dict) -> None:
    """e.g. '  running: 1/3 replicas done; running on gpu-b, gpu-c'"""
    assignments = task.get("assignments") or []
    done = [a for a in assignments if a["state"] == AssignmentState.FINISHED]
    live = [a["helper_name"] for a in assignments if a["state"] in AssignmentState.live()]
    parts = []
    if task.get("replicas", 1) > 1:
        parts.append(f"{len(done)}/{task['replicas']} replicas done")
    if live:
        parts.append(f"on {', '.join(live)}")
    if task.get("wait_reason") and task["state"] == TaskState.PENDING:
        parts.append(task["wait_reason"])
    detail = f": {'; '.join(parts)}" if parts else ""
    click.echo(f"  {task['state']}{detail}", err=True)


def exit_code(task: dict) -> int:
    """0 for success, the container's exit code for a failed run, else 1."""
    if task["state"] == TaskState.SUCCEEDED:
        return 0
    code = (task.get("result") or {}).get("exit_code")
    if task["state"] == TaskState.FAILED and code:
        return int(code) if 0 < int(code) < 256 else EXIT_NOT_SUCCEEDED
    return EXIT_NOT_SUCCEEDED


@main.command()
@client_options
@click.argument("task_id")
@api_errors
def status(seeker_url, token, ca_cert, as_json, task_id):
    """Show a task's state, assignments and why it waits (or an array's tasks by state)."""
    client = connect(seeker_url, token, ca_cert)
    if is_array(task_id):
        emit(client.array(task_id), as_json, array_text)
        return
    emit(client.get(task_id), as_json, task_summary)


@main.command()
@client_options
@click.argument("task_id")
@click.option("--logs/--no-logs", default=True, show_default=True, help="Print stdout/stderr.")
@click.option(
    "--download",
    "download_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Save every result's artifacts under DIR/<helper>-<attempt>/.",
)
@api_errors
def results(seeker_url, token, ca_cert, as_json, task_id, logs, download_dir):
    """Show every result of a task (the canonical one starred), as stored in the channel."""
    client = connect(seeker_url, token, ca_cert)
    if download_dir:
        saved = client.download_results(task_id, download_dir)
        emit(
            [str(p) for p in saved],
            as_json,
            lambda paths: "\n".join(paths) if paths else "no artifacts",
        )
        return
    emit(client.results(task_id), as_json, lambda r: results_table(r, logs=logs))


@main.command()
@client_options
@click.argument("helper", required=False)
@click.option("--remove", "remove_id", metavar="HELPER_ID", help="Remove a helper.")
@click.option(
    "--online/--offline", "online", default=None, help="Only the helpers online, or offline."
)
@api_errors
def helpers(seeker_url, token, ca_cert, as_json, helper, remove_id, online):
    """List the registered helpers (every one, by name), or show HELPER (its
    id or its name)."""
    client = connect(seeker_url, token, ca_cert)
    if remove_id:
        emit(client.remove_helper(remove_id), as_json, lambda r: f"removed {r['removed']}")
        return
    if helper:
        emit(client.helper(helper), as_json, lambda h: helpers_table([h]))
        return
    emit(client.helpers(online), as_json, helpers_table)


@main.command()
@client_options
@click.option("--state", help="Only tasks in this state.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@click.option("--array", "array_id", metavar="ARRAY_ID", help="Every task of this array, by index.")
@api_errors
def tasks(seeker_url, token, ca_cert, as_json, state, limit, array_id):
    """List recent tasks (or an array's)."""
    client = connect(seeker_url, token, ca_cert)
    if array_id:
        emit(client.array_tasks(array_id), as_json, tasks_table)
        return
    emit(client.tasks(state, limit), as_json, tasks_table)


@main.command()
@client_options
@click.argument("task_id")
@api_errors
def cancel(seeker_url, token, ca_cert, as_json, task_id):
    """Cancel a task: withdraw it if pending, stop its containers if running
    (an array: every task of it that has not ended)."""
    client = connect(seeker_url, token, ca_cert)
    if is_array(task_id):
        emit(client.cancel_array(task_id), as_json, array_text)
        return
    emit(client.cancel(task_id), as_json, lambda t: f"task {t['task_id']} {t['state']}")
