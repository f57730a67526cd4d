"""`channel start`."""

from __future__ import annotations

import click

from channel.artifacts import DEFAULT_MAX_ARTIFACT_BYTES
from channel.server import ChannelServer
from serving import receipts
from serving.cli import (
    log,
    mongo_option,
    receipt_key_option,
    serve_until_signal,
    server_options,
    starting,
)
from serving.database import DatabaseConnection


@click.group()
def main():
    """The Seeker channel: stores results and answers queries by task id."""


@main.command()
@server_options("channel", 7071)
@mongo_option
@receipt_key_option
@click.option(
    "--max-artifact-bytes",
    envvar="CHANNEL_MAX_ARTIFACT_BYTES",
    show_envvar=True,
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_ARTIFACT_BYTES,
    show_default=True,
    help="The largest artifact accepted, in bytes; larger uploads get 413.",
)
def start(host, port, token, data_dir, tls, mongo_url, receipt_key, max_artifact_bytes):
    """Serve the channel's REST API."""
    with starting("the channel"):
        conn = DatabaseConnection(mongo_url, data_dir)
        config = {"MAX_ARTIFACT_BYTES": max_artifact_bytes}
        server = ChannelServer(
            conn.database("channel"),
            token,
            host,
            port,
            config=config,
            tls=tls,
            receipt_key=receipts.receipt_key(receipt_key, token),
        ).start()
    log.info("channel listening on %s", server.url)
    serve_until_signal(conn, server)  # the server stops first, then the database
