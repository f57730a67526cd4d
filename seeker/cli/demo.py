"""`python -m seeker.cli.demo`: the whole round trip on one machine.

Starts `seeker up` (seeker, channel and a local helper, embedded database
under --data-dir), submits a task that runs a real container, waits for it,
prints the structured result queried from the channel by task id, and shuts
everything down."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import requests

from channel.client import ChannelClient
from seeker.client import SeekerClient
from seeker.models import TaskState
from serving.http import Unreachable


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(f"seeker up exited with code {proc.returncode}")
        try:
            if requests.get(f"{url}/healthz", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise click.ClickException(f"{url} not healthy after {timeout}s")


@click.command()
@click.option("--data-dir", default=".demo", show_default=True, type=click.Path(path_type=Path))
@click.option("--image", default="seeker-demo:latest", show_default=True)
@click.option("--port", default=7070, show_default=True, type=int)
def main(data_dir: Path, image: str, port: int) -> None:
    token = secrets.token_urlsafe(16)
    seeker_url, channel_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"
    cmd = [
        sys.executable,
        "-m",
        "seeker",
        "up",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--channel-port",
        str(port + 1),
        "--helper-port",
        str(port + 2),
        "--log-level",
        "warning",
    ]
    click.echo(f"$ seeker up --data-dir {data_dir}")
    proc = subprocess.Popen(cmd, env={**os.environ, "SEEKER_TOKEN": token})
    try:
        wait_healthy(seeker_url, proc)
        client = SeekerClient(seeker_url, token)
        deadline = time.monotonic() + 30
        while not client.helpers():
            if time.monotonic() > deadline:
                raise click.ClickException("the local helper did not register")
            time.sleep(0.2)
        command = ["sh", "-c", 'echo "hello from $(hostname)"; uname -m; echo done >&2']
        click.echo(f"$ seeker submit --wait {image} -- {' '.join(command)}")
        task = client.submit(image, command, env={"GREETING": "hello"}, timeout=60)
        task = client.wait(
            task["task_id"], timeout=120, on_change=lambda t: click.echo(f"  state: {t['state']}")
        )
        click.echo(
            f"$ curl -H 'Authorization: Bearer ...' '{channel_url}/api/v1/results"
            f"?task_id={task['task_id']}'"
        )
        page = ChannelClient(channel_url, token).results(task["task_id"])
        click.echo(json.dumps(page, indent=2))
        if task["state"] != TaskState.SUCCEEDED:
            raise click.ClickException(f"task ended {task['state']}: {task.get('error')}")
        click.echo(
            f"demo ok: task {task['task_id']} succeeded on {page['results'][0]['helper_name']}"
        )
    except Unreachable as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
            click.echo(f"seeker up stopped (exit {code})")
        except subprocess.TimeoutExpired:
            proc.kill()
            raise click.ClickException("seeker up did not stop within 30s; killed") from None


if __name__ == "__main__":
    main()
