"""The CLI in-process: help for every subcommand, one-line errors, exit codes."""

from __future__ import annotations

import pytest
import yaml

from detal.cli import COMMANDS, build_parser, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def _subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_prints_usage(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: detal " + command in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: detal" in capsys.readouterr().out


def test_config_command_prints_resolved_yaml(capsys):
    assert main(["config", "--set", "imgsz=96", "--set", "aggregate=mean"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["imgsz"] == 96 and printed["aggregate"] == "mean"


def test_config_defaults_prints_the_packaged_file(capsys):
    from detal.config import Config, defaults_text

    assert main(["config", "--defaults"]) == 0
    out = capsys.readouterr().out
    assert out == defaults_text()
    assert "# " in out  # the comments are kept, not a bare dump
    assert yaml.safe_load(out) == Config().to_dict()


def test_config_defaults_refuses_overrides(capsys):
    assert main(["config", "--defaults", "--set", "imgsz=96"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--defaults" in err[0] and err[0].startswith("detal: error: ")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["config", "--set", "imgsx=1"], "did you mean 'imgsz'"),
        (["config", "--set", "batch_fraction=1.5"], "batch_fraction must lie in (0, 1]"),
        (["config", "--config", "/no/such/file.yaml"], "/no/such/file.yaml: config file not found"),
    ],
)
def test_errors_are_one_line_exit_1(argv, needle, capsys):
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("detal: error: ")
    assert needle in lines[0]
    assert "Traceback" not in captured.err


def test_cli_startup_loads_no_heavy_library():
    # `detal --help` and every parser must come up without torch, ultralytics,
    # cv2 or sklearn: they load only inside the commands that use them.
    import subprocess
    import sys

    code = (
        "import sys, detal.cli; detal.cli.build_parser(); "
        "print(','.join(m for m in ('torch', 'ultralytics', 'cv2', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
