"""`seeker events`: the seeker's event log (tasks that ended, helpers
purged), a page of it, or followed as it grows (blocking queries)."""

from __future__ import annotations

import json

import click

from seeker.cli.common import api_errors, client_options, connect, emit
from seeker.cli.tables import event_line, events_text


@click.command()
@client_options
@click.option(
    "--after", type=click.IntRange(0), default=0, show_default=True, help="Events after this seq."
)
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Print each event as it is published, until interrupted (with --json: one JSON "
    "object a line).",
)
@api_errors
def events(seeker_url, token, ca_cert, as_json, after, limit, follow):
    """What happened, oldest first: tasks that ended, helpers purged."""
    client = connect(seeker_url, token, ca_cert)
    if not follow:
        emit(client.events(after, limit), as_json, events_text)
        return
    try:
        for event in client.follow_events(after):
            click.echo(json.dumps(event, default=str) if as_json else event_line(event))
    except KeyboardInterrupt:
        pass
