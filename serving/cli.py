"""Options and start-up shared by the `seeker`, `helper` and `channel` servers."""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path

import click

from serving.config import config_option
from serving.secret_files import resolve_token
from serving.tls import ServerCert
from serving.wsgi import wait_for_signal

log = logging.getLogger("seeker")


def server_options(service: str, port: int):
    """--host, --port, --token, --data-dir, --log-level, and --tls-cert and
    --tls-key (passed on as `tls`, a ServerCert or None) for a server command."""

    def decorate(f):
        @config_option(service)
        @click.option(
            "--host",
            default="127.0.0.1",
            show_default=True,
            help="Address to listen on (0.0.0.0 for every interface).",
        )
        @click.option("--port", default=port, show_default=True, type=int)
        @click.option(
            "--token",
            envvar="SEEKER_TOKEN",
            show_envvar=True,
            help="Bearer token clients must send; generated into DATA_DIR/token if absent.",
        )
        @click.option(
            "--data-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=lambda: Path.home() / ".seeker" / service,
            show_default=f"~/.seeker/{service}",
            help="Where this service keeps its files.",
        )
        @click.option(
            "--log-level",
            default="info",
            show_default=True,
            type=click.Choice(["debug", "info", "warning", "error"]),
        )
        @click.option(
            "--tls-cert",
            envvar="SEEKER_TLS_CERT",
            show_envvar=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Serve HTTPS with this PEM certificate (its chain after it); needs --tls-key.",
        )
        @click.option(
            "--tls-key",
            envvar="SEEKER_TLS_KEY",
            show_envvar=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="The PEM private key of --tls-cert.",
        )
        @functools.wraps(f)
        def wrapper(*args, log_level, token, data_dir, tls_cert, tls_key, **kwargs):
            if (tls_cert is None) != (tls_key is None):
                raise click.UsageError("--tls-cert and --tls-key go together: give both or neither")
            setup_logging(log_level)
            data_dir.mkdir(parents=True, exist_ok=True)
            token, generated = resolve_token(token, data_dir)
            if generated:
                click.echo(f"No --token given: generated one in {data_dir / 'token'}", err=True)
            tls = ServerCert(tls_cert, tls_key) if tls_cert else None
            return f(*args, token=token, data_dir=data_dir, tls=tls, **kwargs)

        return wrapper

    return decorate


def receipt_key_option(f):
    return click.option(
        "--receipt-key",
        envvar="SEEKER_RECEIPT_KEY",
        show_envvar=True,
        help="Key the seeker signs each assignment's receipt with and the channel checks "
        "results against; give the seeker and the channel the same one (default: derived "
        "from --token, so anyone with the token could forge results: see docs/security.md).",
    )(f)


def join_token_option(f):
    return click.option(
        "--join-token",
        envvar="SEEKER_JOIN_TOKEN",
        show_envvar=True,
        help="Token with which helpers register (default: --token). A helper gets its own "
        "credential in return.",
    )(f)


def mongo_option(f):
    return click.option(
        "--mongo-url",
        envvar="MONGO_URL",
        show_envvar=True,
        help="MongoDB to use; absent: an embedded database kept under --data-dir.",
    )(f)


def ca_cert_option(f):
    """--ca-cert for a command that is a client of Seeker servers."""
    return click.option(
        "--ca-cert",
        envvar="SEEKER_CA_CERT",
        show_envvar=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Trust https:// servers whose certificate this CA (a PEM file) signed, "
        "instead of the default CAs.",
    )(f)


def parse_pairs(values, option: str) -> dict[str, str]:
    """KEY=VALUE options (--env, --label, --constraint) as a dict."""
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint=option)
        pairs[key] = value
    return pairs


@contextlib.contextmanager
def starting(what: str):
    """A server that cannot start (database unreachable, port taken, no
    Docker) says so in one line instead of a traceback."""
    try:
        yield
    except click.ClickException:
        raise
    except Exception as exc:
        log.debug("start-up failed", exc_info=True)
        raise click.ClickException(f"cannot start {what}: {exc}") from None


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    for noisy in ("pymongo", "urllib3", "docker"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLogger().level))


def serve_until_signal(*components) -> None:
    """Block until SIGINT/SIGTERM, then stop the components in reverse order."""
    signum = wait_for_signal()
    log.info("signal %d: shutting down", signum)
    for c in reversed(components):
        c.stop()
