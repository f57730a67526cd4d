"""`channel start`."""

from __future__ import annotations

import click

from channel.server import ChannelServer
from serving.cli import log, mongo_option, serve_until_signal, server_options
from serving.database import DatabaseConnection


@click.group()
def main():
    """The Seeker channel: stores results and answers queries by task id."""


@main.command()
@server_options("channel", 7071)
@mongo_option
def start(host, port, token, data_dir, mongo_url):
    """Serve the channel's REST API."""
    conn = DatabaseConnection(mongo_url, data_dir)
    server = ChannelServer(conn.database("channel"), token, host, port).start()
    log.info("channel listening on %s", server.url)
    serve_until_signal(conn, server)
