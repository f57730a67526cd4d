"""`helper start`."""

from __future__ import annotations

import click

from helper.agent import HelperAgent, HelperConfig
from helper.resources import declared_resources
from serving.cli import log, parse_pairs, serve_until_signal, server_options


def _declared(spec: str | None) -> dict:
    if not spec:
        return {}
    try:
        return declared_resources(spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--test-resources") from None


@click.group()
def main():
    """The Seeker helper: runs the containers the seeker assigns to this host."""


@main.command()
@server_options("helper", 7072)
@click.option("--seeker-url", envvar="SEEKER_URL", required=True, show_envvar=True)
@click.option("--channel-url", envvar="CHANNEL_URL", required=True, show_envvar=True)
@click.option(
    "--advertise-url",
    help="URL at which the seeker reaches this helper (default: http://HOST:PORT).",
)
@click.option("--name", help="Unique helper name (default: the host name).")
@click.option(
    "--slots",
    default=1,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="How many tasks run at once.",
)
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@click.option(
    "--network",
    "network_mode",
    default="bridge",
    show_default=True,
    type=click.Choice(["bridge", "none"]),
    help="Network of task containers.",
)
@click.option(
    "--heartbeat",
    default=15.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds between re-registrations with fresh resources.",
)
@click.option(
    "--test-resources",
    metavar="SPEC",
    help="TEST ONLY: declare resources instead of measuring them, e.g. "
    "'cpus=8,memory=32g,gpus=2,gpu_memory=16g'. Declared GPUs are not real.",
)
def start(
    host,
    port,
    token,
    data_dir,
    seeker_url,
    channel_url,
    advertise_url,
    name,
    slots,
    labels,
    network_mode,
    heartbeat,
    test_resources,
):
    """Register with the seeker and run the containers it assigns."""
    cfg = HelperConfig(
        seeker_url=seeker_url,
        channel_url=channel_url,
        token=token,
        data_dir=data_dir,
        host=host,
        port=port,
        advertise_url=advertise_url,
        name=name,
        slots=slots,
        labels=parse_pairs(labels, "--label"),
        network_mode=network_mode,
        heartbeat=heartbeat,
        declared=_declared(test_resources),
    )
    try:
        agent = HelperAgent(cfg).start()
    except Exception as exc:  # docker missing, port taken: one clear line
        raise click.ClickException(f"cannot start helper: {exc}") from exc
    log.info("helper %s listening on %s", agent.name, agent.server.url)
    serve_until_signal(agent)
