"""The config file: precedence (flag > environment > file > default), its
errors, the sections the real commands read, and the reference tables."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import serving.config
from channel.cli import main as channel_main
from helper.cli import main as helper_main
from seeker.cli import config_docs
from seeker.cli.commands import main as seeker_main
from seeker.cli.config_docs import DOCS_MARKER
from serving.config import ConfigOption, config_keys, config_option, read_section

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No config file, variable or token from the machine running the tests."""
    monkeypatch.setattr(serving.config, "SYSTEM_FILE", tmp_path / "etc" / "seeker.toml")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in ("SEEKER_CONFIG", "SEEKER_TOKEN", "SEEKER_URL", "CHANNEL_URL", "MONGO_URL"):
        monkeypatch.delenv(name, raising=False)


@click.command()
@config_option("helper")
@click.option("--seeker-url", envvar="SEEKER_URL", default="http://default:7070")
@click.option("--slots", default=1, type=click.IntRange(1))
@click.option("--label", "labels", multiple=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--verbose", is_flag=True)
def probe(seeker_url, slots, labels, data_dir, verbose):
    click.echo(
        json.dumps(
            {
                "seeker_url": seeker_url,
                "slots": slots,
                "labels": list(labels),
                "data_dir": str(data_dir) if data_dir else None,
                "verbose": verbose,
            }
        )
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def run(command, args, env=None):
    return CliRunner().invoke(command, args, env=env, catch_exceptions=False)


def values(command, args, env=None) -> dict:
    result = run(command, args, env)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
def conf(tmp_path):
    return write(
        tmp_path / "seeker.toml",
        '[helper]\nseeker-url = "http://file:7070"\nslots = 4\n',
    )


# --- precedence ------------------------------------------------------------------


def test_default_when_nothing_sets_it():
    assert values(probe, [])["seeker_url"] == "http://default:7070"


def test_file_beats_default(conf):
    got = values(probe, ["--config", str(conf)])
    assert (got["seeker_url"], got["slots"]) == ("http://file:7070", 4)


def test_environment_beats_file(conf):
    got = values(probe, ["--config", str(conf)], env={"SEEKER_URL": "http://env:7070"})
    assert got["seeker_url"] == "http://env:7070"
    assert got["slots"] == 4  # what the environment does not set still comes from the file


def test_flag_beats_environment_and_file(conf):
    got = values(
        probe,
        ["--config", str(conf), "--seeker-url", "http://flag:7070", "--slots", "2"],
        env={"SEEKER_URL": "http://env:7070"},
    )
    assert (got["seeker_url"], got["slots"]) == ("http://flag:7070", 2)


def test_flag_beats_file_whatever_the_order_on_the_command_line(conf):
    got = values(probe, ["--slots", "2", "--config", str(conf)])
    assert got["slots"] == 2


def test_seeker_config_variable_names_the_file(conf):
    assert values(probe, [], env={"SEEKER_CONFIG": str(conf)})["slots"] == 4


# --- default files ---------------------------------------------------------------


def test_default_files_are_read_the_users_over_the_systems(tmp_path):
    write(serving.config.SYSTEM_FILE, '[helper]\nslots = 3\nseeker-url = "http://sys:1"\n')
    write(tmp_path / "xdg" / "seeker" / "seeker.toml", "[helper]\nslots = 5\n")
    got = values(probe, [])
    assert (got["slots"], got["seeker_url"]) == (5, "http://sys:1")


def test_an_explicit_file_replaces_the_default_files(tmp_path, conf):
    write(serving.config.SYSTEM_FILE, "[helper]\nbroken-key = 1\n")
    assert values(probe, ["--config", str(conf)])["slots"] == 4


def test_help_works_with_a_broken_default_file():
    write(serving.config.SYSTEM_FILE, "[helper\n")
    result = run(probe, ["--help"])
    assert result.exit_code == 0 and "--config FILE" in result.output


# --- values ----------------------------------------------------------------------


def test_keys_take_dashes_or_underscores(tmp_path):
    path = write(tmp_path / "c.toml", '[helper]\nseeker_url = "http://under:1"\n')
    assert values(probe, ["--config", str(path)])["seeker_url"] == "http://under:1"


def test_a_list_or_a_single_value_for_a_repeatable_option(tmp_path):
    many = write(tmp_path / "many.toml", '[helper]\nlabel = ["gpu=a100", "zone=b"]\n')
    one = write(tmp_path / "one.toml", '[helper]\nlabel = "gpu=a100"\n')
    assert values(probe, ["--config", str(many)])["labels"] == ["gpu=a100", "zone=b"]
    assert values(probe, ["--config", str(one)])["labels"] == ["gpu=a100"]


def test_a_repeated_flag_replaces_the_files_list(tmp_path):
    path = write(tmp_path / "c.toml", '[helper]\nlabel = ["gpu=a100", "zone=b"]\n')
    assert values(probe, ["--config", str(path), "--label", "x=y"])["labels"] == ["x=y"]


def test_flags_take_booleans(tmp_path):
    path = write(tmp_path / "c.toml", "[helper]\nverbose = true\n")
    assert values(probe, ["--config", str(path)])["verbose"] is True


def test_tilde_in_a_path_is_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = write(tmp_path / "c.toml", '[helper]\ndata-dir = "~/helper"\n')
    got = values(probe, ["--config", str(path)])
    assert got["data_dir"] == str(tmp_path / "home" / "helper")


# --- errors: one line naming the file and the key ----------------------------------


def error_of(args, env=None, command=probe) -> str:
    result = run(command, args, env)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = write(tmp_path / "c.toml", "[helper]\nslot = 3\n")
    line = error_of(["--config", str(path)])
    assert line == (
        f"Error: config file {path}: unknown key 'slot' in [helper] (did you mean 'slots'?)"
    )


def test_unknown_key_in_a_default_file_names_that_file():
    write(serving.config.SYSTEM_FILE, "[helper]\ncolour = 1\n")
    line = error_of([])
    assert str(serving.config.SYSTEM_FILE) in line and "'colour'" in line


def test_unknown_section(tmp_path):
    path = write(tmp_path / "c.toml", "[helpers]\nslots = 3\n")
    line = error_of(["--config", str(path)])
    assert "unknown section [helpers] (did you mean 'helper'?)" in line


def test_a_key_outside_any_section(tmp_path):
    path = write(tmp_path / "c.toml", 'token = "x"\n')
    assert "key 'token' must be inside a section" in error_of(["--config", str(path)])


def test_the_same_option_twice(tmp_path):
    path = write(tmp_path / "c.toml", '[helper]\nseeker-url = "a"\nseeker_url = "b"\n')
    assert "sets 'seeker-url' twice" in error_of(["--config", str(path)])


def test_a_value_of_the_wrong_type_names_file_and_key(tmp_path):
    path = write(tmp_path / "c.toml", '[helper]\nslots = "many"\n')
    line = error_of(["--config", str(path)])
    assert line.startswith(f"Error: config file {path}: [helper] slots: ")
    assert "'many' is not a valid integer" in line


def test_a_table_where_a_value_belongs(tmp_path):
    path = write(tmp_path / "c.toml", "[helper.label]\ngpu = 'a100'\n")
    assert "[helper] label: expected a value, not a table" in error_of(["--config", str(path)])


def test_bad_toml(tmp_path):
    path = write(tmp_path / "c.toml", "[helper]\nslots = = 3\n")
    line = error_of(["--config", str(path)])
    assert line.startswith(f"Error: config file {path}: not valid TOML: ")


def test_missing_file_given_by_flag(tmp_path):
    path = tmp_path / "nope.toml"
    line = error_of(["--config", str(path)])
    assert line == f"Error: config file {path}: cannot read it: No such file or directory"


def test_missing_file_given_by_variable(tmp_path):
    path = tmp_path / "nope.toml"
    line = error_of([], env={"SEEKER_CONFIG": str(path)})
    assert f"config file {path} (from SEEKER_CONFIG): cannot read it" in line


def test_missing_default_files_are_no_error():
    assert values(probe, [])["slots"] == 1


# --- the real commands -----------------------------------------------------------

COMMANDS = {
    ("seeker", "start"): "seeker",
    ("seeker", "up"): "up",
    ("channel", "start"): "channel",
    ("helper", "start"): "helper",
    **{
        ("seeker", name): "client"
        for name in ("submit", "status", "results", "helpers", "tasks", "cancel")
    },
}
GROUPS = {"seeker": seeker_main, "channel": channel_main, "helper": helper_main}


@pytest.mark.parametrize(("prog", "name"), list(COMMANDS))
def test_every_server_and_user_command_reads_its_section(prog, name):
    command = GROUPS[prog].commands[name]
    sections = [p.section for p in command.params if isinstance(p, ConfigOption)]
    assert sections == [COMMANDS[prog, name]]


def test_client_section_holds_only_what_every_user_command_takes():
    keys = config_keys(seeker_main.commands["submit"], "client", seeker_main)
    assert set(keys) == {"seeker-url", "token", "ca-cert", "json"}


def test_a_submit_only_option_in_client_is_refused(tmp_path):
    path = write(tmp_path / "c.toml", "[client]\ncpus = 2\n")
    line = error_of(["status", "--config", str(path), "t1"], command=seeker_main)
    assert line == f"Error: config file {path}: unknown key 'cpus' in [client]"


def test_user_commands_take_url_and_token_from_the_file(tmp_path, monkeypatch):
    seen = {}

    class FakeClient:
        def tasks(self, state, limit):
            return []

    def connect(url, token, ca_cert):
        seen.update(url=url, token=token, ca_cert=ca_cert)
        return FakeClient()

    monkeypatch.setattr("seeker.cli.commands.connect", connect)
    ca = write(tmp_path / "ca.pem", "a CA\n")
    path = write(
        tmp_path / "c.toml",
        '[client]\nseeker-url = "https://head:7070"\ntoken = "from-file"\njson = true\n'
        f'ca-cert = "{ca}"\n',
    )
    result = run(seeker_main, ["tasks", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert seen == {"url": "https://head:7070", "token": "from-file", "ca_cert": ca}
    assert json.loads(result.output) == []  # json = true
    run(seeker_main, ["tasks", "--config", str(path)], env={"SEEKER_TOKEN": "from-env"})
    assert seen["token"] == "from-env"
    run(seeker_main, ["tasks", "--config", str(path), "--token", "flag"], {"SEEKER_TOKEN": "e"})
    assert seen["token"] == "flag"


def test_helper_start_takes_its_settings_from_the_helper_section(tmp_path, monkeypatch):
    captured = {}

    class FakeAgent:
        def __init__(self, cfg):
            captured["cfg"] = cfg

        def start(self):
            raise RuntimeError("not started in this test")

    monkeypatch.setattr("helper.cli.HelperAgent", FakeAgent)
    path = write(
        tmp_path / "c.toml",
        f"""
[helper]
seeker-url = "http://head:7070"
channel-url = "http://head:7071"
token = "t"
data-dir = "{tmp_path / "data"}"
slots = 4
label = ["gpu=a100", "zone=b"]
network = "none"
log-cap = "2m"
""",
    )
    result = run(helper_main, ["start", "--config", str(path), "--slots", "2"])
    assert "cannot start the helper: not started in this test" in result.output
    cfg = captured["cfg"]
    assert (cfg.seeker_url, cfg.channel_url, cfg.token) == (
        "http://head:7070",
        "http://head:7071",
        "t",
    )
    assert (cfg.slots, cfg.labels, cfg.network_mode) == (2, {"gpu": "a100", "zone": "b"}, "none")
    assert cfg.data_dir == tmp_path / "data" and cfg.log_cap == 2 * 1024 * 1024


def test_the_example_config_is_valid_for_every_command(tmp_path):
    example = ROOT / "deploy" / "seeker.toml"
    ctx_of = {}
    for (prog, name), section in COMMANDS.items():
        command = GROUPS[prog].commands[name]
        ctx = click.Context(command)
        keys = config_keys(command, section, GROUPS[prog])
        ctx_of[section] = read_section(example, section, keys, ctx, str(example))
    assert ctx_of["helper"] and ctx_of["client"] and ctx_of["seeker"] and ctx_of["channel"]


def test_the_reference_tables_in_the_docs_are_current():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    _, marker, tables = doc.partition(DOCS_MARKER)
    assert marker, f"docs/configuration.md lost its marker line {DOCS_MARKER!r}"
    assert tables.strip() == config_docs.reference().strip(), (
        "docs/configuration.md is out of date with the commands' options: run "
        "`.venv/bin/python -m seeker.cli.config_docs --write docs/configuration.md`"
    )
