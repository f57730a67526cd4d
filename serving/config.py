"""Defaults from a TOML config file for the commands that take --config.

Precedence, highest first: a flag on the command line, its environment
variable, the config file, the built-in default. click does the layering:
the file's section becomes the command's `default_map`, which click consults
only after the command line and the environment.

    [helper]
    seeker-url = "http://head:7070"
    slots = 4
    label = ["gpu=a100", "zone=b"]

Keys are the long option names, with dashes or underscores. `--config FILE`
(or SEEKER_CONFIG) names the file; without it the command reads
/etc/seeker/seeker.toml and then the user's ~/.config/seeker/seeker.toml,
whichever exist, the user's keys over the system's. A file that cannot be
read, is not TOML, or holds a key no option has stops the command with one
line naming the file and the key.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

import click

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ENVVAR = "SEEKER_CONFIG"
SYSTEM_FILE = Path("/etc/seeker/seeker.toml")
# The section each command reads: `seeker start`, `channel start`,
# `helper start`, `seeker up`, and the user commands (submit, status, ...).
SECTIONS = ("seeker", "channel", "helper", "up", "client")


class ConfigError(click.ClickException):
    """A config file that cannot be used; exits 2, like a usage error."""

    exit_code = 2


class ConfigOption(click.Option):
    """--config FILE: read this command's defaults from section `section`."""

    def __init__(self, *args, section: str, **kwargs):
        if section not in SECTIONS:
            raise ValueError(f"unknown config section {section!r}")
        super().__init__(*args, **kwargs)
        self.section = section


def config_option(section: str):
    """Decorator: give a command --config, reading `[section]` of the file."""

    return click.option(
        "--config",
        "config_file",
        cls=ConfigOption,
        section=section,
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=ENVVAR,
        show_envvar=True,
        is_eager=True,
        expose_value=False,
        callback=_apply,
        metavar="FILE",
        help=f"TOML file whose [{section}] section sets defaults for these options "
        "(default: /etc/seeker/seeker.toml, then ~/.config/seeker/seeker.toml, if present).",
    )


def default_files() -> list[Path]:
    """The files read when no --config is given, lowest precedence first."""
    files = [SYSTEM_FILE]
    try:
        user = Path(os.environ.get("XDG_CONFIG_HOME") or "~/.config").expanduser()
    except RuntimeError:  # no home directory to expand ~ to
        return files
    return [*files, user / "seeker" / "seeker.toml"]


def _apply(ctx: click.Context, param: ConfigOption, value: Path | None) -> None:
    if ctx.resilient_parsing:
        return
    if value is not None:
        source = ctx.get_parameter_source(param.name)
        via = f" (from {ENVVAR})" if source == click.core.ParameterSource.ENVIRONMENT else ""
        paths, label = [value], f"{value}{via}"
    else:
        paths, label = [p for p in default_files() if p.is_file()], None
    keys = config_keys(ctx.command, param.section, ctx.parent.command if ctx.parent else None)
    found: dict = {}
    for path in paths:
        found.update(read_section(path, param.section, keys, ctx, label or str(path)))
    if found:
        ctx.default_map = {**found, **(ctx.default_map or {})}


def read_section(
    path: Path, section: str, keys: dict[str, click.Option], ctx: click.Context, label: str
) -> dict:
    """`default_map` entries from `[section]` of one file, every value checked."""
    doc = load(path, label)
    for name, table in doc.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"config file {label}: key {name!r} must be inside a section "
                f"({', '.join(f'[{s}]' for s in SECTIONS)})"
            )
        if name not in SECTIONS:
            raise ConfigError(
                f"config file {label}: unknown section [{name}]{_hint(name, SECTIONS)}"
            )
    found: dict = {}
    seen: dict[str, str] = {}
    for key, value in doc.get(section, {}).items():
        name = key.replace("_", "-")
        option = keys.get(name)
        if option is None:
            raise ConfigError(
                f"config file {label}: unknown key {key!r} in [{section}]{_hint(name, keys)}"
            )
        if name in seen:
            raise ConfigError(
                f"config file {label}: [{section}] sets {name!r} twice "
                f"(as {seen[name]!r} and {key!r})"
            )
        seen[name] = key
        found[option.name] = _checked(ctx, option, value, f"config file {label}: [{section}] {key}")
    return found


def load(path: Path, label: str | None = None) -> dict:
    label = label or str(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"config file {label}: cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {label}: not valid TOML: {exc}") from None


def _checked(ctx: click.Context, option: click.Option, value, where: str):
    """The value for `default_map`, after checking it the way click will."""
    if isinstance(value, dict):
        raise ConfigError(f"{where}: expected a value, not a table")
    if option.multiple and not isinstance(value, list):
        value = [value]
    if isinstance(option.type, click.Path):
        value = [_home(v) for v in value] if isinstance(value, list) else _home(value)
    try:
        option.type_cast_value(ctx, value)
    except click.BadParameter as exc:
        raise ConfigError(f"{where}: {exc.message}") from None
    return value


def _home(value):
    return os.path.expanduser(value) if isinstance(value, str) else value


def _hint(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def option_keys(command: click.Command) -> dict[str, click.Option]:
    """Config key (long option name, no dashes) -> option, for every option but --config."""
    keys = {}
    for param in command.params:
        if isinstance(param, click.Option) and not isinstance(param, ConfigOption):
            for opt in param.opts:
                if opt.startswith("--"):
                    keys[opt[2:]] = param
    return keys


def section_of(command: click.Command) -> str | None:
    for param in command.params:
        if isinstance(param, ConfigOption):
            return param.section
    return None


def config_keys(
    command: click.Command, section: str, group: click.Command | None = None
) -> dict[str, click.Option]:
    """The keys `command` takes from `[section]`. A section that several
    commands of a group read ([client]) holds only the options they all have,
    so nothing command-specific (`helpers --remove`) can hide in it."""
    keys = option_keys(command)
    siblings = [c for c in getattr(group, "commands", {}).values() if section_of(c) == section]
    for other in siblings:
        shared = option_keys(other)
        keys = {k: v for k, v in keys.items() if k in shared}
    return keys
