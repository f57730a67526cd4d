"""`helper start`, and `helper gpus` (gpu_check.py)."""

from __future__ import annotations

import click

from helper.agent import HelperAgent
from helper.config import HelperConfig
from helper.gpu_check import gpus
from helper.resources import declared_resources
from serving.cli import (
    ca_cert_option,
    join_token_option,
    log,
    parse_pairs,
    serve_until_signal,
    server_options,
    starting,
)
from serving.schema import parse_bytes


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


main.add_command(gpus)


@main.command()
@server_options("helper", 7072)
@join_token_option
@click.option("--seeker-url", envvar="SEEKER_URL", required=True, show_envvar=True)
@click.option("--channel-url", envvar="CHANNEL_URL", required=True, show_envvar=True)
@ca_cert_option
@click.option(
    "--advertise-url",
    help="URL at which the seeker reaches this helper (default: http://HOST:PORT, "
    "https:// with --tls-cert).",
)
@click.option(
    "--pull",
    is_flag=True,
    help="Pull work over a long poll to the seeker: only outbound connections, for a "
    "host behind NAT or a firewall (no --advertise-url, no open port; --port then serves "
    "only this host's /healthz, /api/v1/status and /metrics).",
)
@click.option(
    "--poll-wait",
    default=None,
    type=click.FloatRange(1, 300),
    help="With --pull: the longest a poll waits for work before it is answered empty. "
    "Default: as long as the seeker lets it (its --poll-wait, 25 s, or a heartbeat's "
    "interval in a large fleet); set it under the idle timeout of a proxy or NAT on the way.",
)
@click.option("--name", help="Unique helper name (default: the host name).")
@click.option(
    "--slots",
    default=1,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="How many tasks run at once; a full helper answers 429.",
)
@click.option(
    "--prefetch",
    default=0,
    show_default=True,
    type=click.IntRange(0, 1024),
    help="How many more tasks it accepts while every slot is taken: each waits here and "
    "starts the moment a container exits, so short tasks follow each other without a "
    "round trip to the seeker. The seeker queues a task here only when no helper has a "
    "free slot for it, and never one that needs GPUs.",
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
    "--allow-image",
    "allow_images",
    multiple=True,
    metavar="PATTERN",
    help="Run only images matching one of these patterns (repeatable; "
    "e.g. 'registry.example.com/team/*'). Default: any image.",
)
@click.option(
    "--allow-mount",
    "allow_mounts",
    multiple=True,
    metavar="PATH",
    type=click.Path(file_okay=False, resolve_path=True),
    help="Host directory tasks may mount (repeatable). Default: none.",
)
@click.option(
    "--log-cap",
    default="1m",
    show_default=True,
    help="Bytes of stdout and of stderr kept in a result; the full logs of a cut "
    "stream are uploaded as an artifact.",
)
@click.option(
    "--pull-timeout",
    default=300.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds an image pull may take.",
)
@click.option(
    "--input-cache",
    default="20g",
    show_default=True,
    help="Bytes of task inputs kept in DATA_DIR/inputs (least recently used go first).",
)
@click.option(
    "--heartbeat",
    default=None,
    type=click.FloatRange(0.1),
    help="The longest between heartbeats. Default: as often as the seeker asks (every 15 s, "
    "less often in fleets of more than 750 helpers); a heartbeat re-registers with fresh "
    "resources when they changed, and at least every 60 heartbeats. A pulling helper's "
    "polls stand in for its light heartbeats.",
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
    join_token,
    tls,
    seeker_url,
    channel_url,
    ca_cert,
    advertise_url,
    pull,
    poll_wait,
    name,
    slots,
    prefetch,
    labels,
    network_mode,
    allow_images,
    allow_mounts,
    log_cap,
    pull_timeout,
    input_cache,
    heartbeat,
    test_resources,
):
    """Register with the seeker and run the containers it assigns."""
    if pull and advertise_url:
        raise click.UsageError("--advertise-url has no use with --pull: the seeker never connects")
    try:
        cap = parse_bytes(log_cap)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--log-cap") from None
    try:
        cache_cap = parse_bytes(input_cache)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--input-cache") from None
    cfg = HelperConfig(
        seeker_url=seeker_url,
        channel_url=channel_url,
        token=token,
        join_token=join_token,
        data_dir=data_dir,
        host=host,
        port=port,
        advertise_url=advertise_url,
        pull=pull,
        poll_wait=poll_wait,
        name=name,
        slots=slots,
        prefetch=prefetch,
        labels=parse_pairs(labels, "--label"),
        network_mode=network_mode,
        heartbeat=heartbeat,
        declared=_declared(test_resources),
        allow_images=list(allow_images),
        allow_mounts=list(allow_mounts),
        log_cap=cap,
        pull_timeout=pull_timeout,
        input_cache=cache_cap,
        tls=tls,
        ca_cert=ca_cert,
    )
    with starting("the helper"):
        agent = HelperAgent(cfg).start()
    log.info("helper %s listening on %s", agent.name, agent.server.url)
    serve_until_signal(agent)
