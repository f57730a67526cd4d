"""`seeker start` and `seeker up`: the seeker's server commands (the user
commands are in seeker/cli/commands.py). What serves is imported when a
server starts: `seeker status` and the other user commands start in 0.4 s
instead of 1.1 s without the server, the scheduler, the helper and Docker's
SDK (tests/unit/test_cli_imports.py)."""

from __future__ import annotations

import click

from serving import receipts
from serving.cli import (
    ca_cert_option,
    join_token_option,
    log,
    mongo_option,
    receipt_key_option,
    serve_until_signal,
    server_options,
    starting,
)
from serving.secret_files import resolve_secret


@click.command()
@server_options("seeker", 7070)
@mongo_option
@join_token_option
@receipt_key_option
@ca_cert_option
@click.option("--channel-url", envvar="CHANNEL_URL", required=True, show_envvar=True)
@click.option(
    "--purge-after",
    default=3,
    show_default=True,
    type=click.IntRange(1),
    help="Consecutive failed contacts after which a helper is purged.",
)
@click.option(
    "--probe-interval",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds between resource probes of every helper.",
)
@click.option(
    "--liveness",
    default=45.0,
    show_default=True,
    type=click.FloatRange(0.5),
    help="Seconds of silence after which a helper counts as offline and its work is re-dispatched.",
)
@click.option(
    "--poll-wait",
    default=25.0,
    show_default=True,
    type=click.FloatRange(1, 300),
    help="Longest a pulling helper's poll waits for work before it is answered empty; "
    "in a fleet whose heartbeats are further apart (over 1,250 helpers: helpers / 50 s, "
    "at most 300 s) as long as a heartbeat's interval. A helper behind a proxy with a "
    "shorter idle timeout sets its own --poll-wait.",
)
@click.option(
    "--ack-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.5),
    help="Seconds a pulling helper has to take an assignment; after that it counts as a "
    "failed contact and the assignment goes to the next best helper.",
)
@click.option(
    "--poll-grace",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds after a pulling helper's poll connection drops before, if it has not "
    "polled again, its work runs elsewhere.",
)
@click.option(
    "--push-connect-timeout",
    default=3.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds a pushed helper has to accept the seeker's connection.",
)
@click.option(
    "--push-read-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds a pushed helper has to answer a push, a probe or a stop.",
)
@click.option(
    "--credential-key",
    envvar="SEEKER_CREDENTIAL_KEY",
    show_envvar=True,
    help="Key the seeker signs helper credentials with. Default: one generated into "
    "DATA_DIR/credential-key and kept there. Several seekers on one database must "
    "share it: give each the same value (e.g. the first seeker's file).",
)
@click.option(
    "--notify-url",
    "notify_urls",
    multiple=True,
    metavar="URL",
    help="POST every event (task finished, failed, cancelled; helper purged) to this "
    "URL as JSON, retried until it answers 2xx (repeatable).",
)
@click.option(
    "--notify-secret",
    envvar="SEEKER_NOTIFY_SECRET",
    show_envvar=True,
    help="Sign every --notify-url post with this secret (header X-Seeker-Signature: "
    "t=<unix time>,v1=<HMAC-SHA256 of '<t>.' + body>), for the receiver to check.",
)
def start(
    host,
    port,
    token,
    data_dir,
    tls,
    mongo_url,
    join_token,
    receipt_key,
    ca_cert,
    channel_url,
    purge_after,
    probe_interval,
    liveness,
    poll_wait,
    ack_timeout,
    poll_grace,
    push_connect_timeout,
    push_read_timeout,
    notify_urls,
    notify_secret,
    credential_key,
):
    """Serve the seeker: helper registry, scheduling, REST API.

    Several seekers given the same --mongo-url, --token, --credential-key
    (and join token and receipt key, if set) act as one seeker."""
    with starting("the seeker"):
        from seeker.process.server import SeekerServer
        from serving.database import DatabaseConnection

        credential_key, _ = resolve_secret(credential_key, data_dir, "credential-key")
        conn = DatabaseConnection(mongo_url, data_dir)
        server = SeekerServer(
            conn.database("seeker"),
            token,
            channel_url,
            host,
            port,
            purge_after=purge_after,
            probe_seconds=probe_interval,
            liveness_seconds=liveness,
            notify_urls=notify_urls,
            notify_secret=notify_secret,
            join_token=join_token,
            credential_key=credential_key.encode(),
            receipt_key=receipts.receipt_key(receipt_key, token),
            tls=tls,
            ca_cert=ca_cert,
            poll_wait=poll_wait,
            ack_timeout=ack_timeout,
            poll_grace=poll_grace,
            push_connect_timeout=push_connect_timeout,
            push_read_timeout=push_read_timeout,
        ).start()
    log.info("seeker listening on %s", server.url)
    serve_until_signal(conn, server)


@click.command()
@server_options("up", 7070)
@mongo_option
@ca_cert_option
@click.option("--channel-port", default=7071, show_default=True, type=int)
@click.option("--helper-port", default=7072, show_default=True, type=int)
@click.option(
    "--slots",
    default=2,
    show_default=True,
    type=click.IntRange(1),
    help="Slots of the local helper.",
)
@click.option(
    "--prefetch",
    default=0,
    show_default=True,
    type=click.IntRange(0, 1024),
    help="Tasks the local helper holds beyond its slots (helper start --prefetch).",
)
def up(
    host, port, token, data_dir, tls, mongo_url, ca_cert, channel_port, helper_port, slots, prefetch
):
    """Seeker, channel and one local helper in one process (single machine).

    With --tls-cert and --tls-key all three serve HTTPS with that certificate
    (valid for --host); --ca-cert is then the CA that signed it, if it is not
    one the default CAs trust."""
    with starting("seeker up"):
        from seeker.process.up import Stack

        stack = Stack(
            data_dir,
            token,
            mongo_url,
            host,
            port,
            channel_port,
            helper_port,
            slots,
            prefetch=prefetch,
            tls=tls,
            ca_cert=ca_cert,
        ).start()
    log.info(
        "seeker %s, channel %s, helper %s (data in %s)",
        stack.seeker.url,
        stack.channel.url,
        stack.helper.server.url,
        data_dir,
    )
    serve_until_signal(stack)


# --- user commands -----------------------------------------------------------
