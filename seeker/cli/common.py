"""What the user commands share: the options that say which seeker to talk
to and how to print, and one clear line for an API or connection error."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from seeker.client import SeekerClient
from serving.cli import ca_cert_option
from serving.config import config_option
from serving.http import ApiError, Unreachable


def client_options(f):
    f = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)
    f = click.option("--token", envvar="SEEKER_TOKEN", show_envvar=True, required=True)(f)
    f = ca_cert_option(f)
    f = click.option(
        "--seeker-url",
        envvar="SEEKER_URL",
        default="http://127.0.0.1:7070",
        show_default=True,
        show_envvar=True,
    )(f)
    return config_option("client")(f)


def connect(seeker_url: str, token: str, ca_cert: Path | None) -> SeekerClient:
    return SeekerClient(seeker_url, token, ca_cert=ca_cert)


def emit(data, as_json: bool, text) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(text(data))


def api_errors(f):
    """Turn API and connection errors into one clear line and exit 1."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except ApiError as exc:
            detail = f" ({_detail(exc.detail)})" if exc.detail else ""
            raise click.ClickException(f"{exc.message}{detail}") from None
        except Unreachable as exc:
            raise click.ClickException(str(exc)) from None
        except TimeoutError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _detail(detail) -> str:
    if isinstance(detail, list):
        return "; ".join(
            f"{d.get('field')}: {d.get('message')}" if isinstance(d, dict) else str(d)
            for d in detail
        )
    return str(detail)
