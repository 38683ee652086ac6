"""Each option declared once (backfill.option_specs): the tools' click options, RunOptions,
the --help screens and a printed resume command all say what the declaration says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from backfill.commands import control, task
from backfill.console import Labels
from backfill.option_specs import SECTION_OF
from backfill.options import RunOptions
from wardrobe.commands import backfill, rollback, validate, vocabulary

TOOLS = [backfill.main, rollback.main, validate.main, vocabulary.main, control.main,
         task.run, task.validate, task.rollback]


def tool_id(tool: click.Command) -> str:
    module = str(tool.callback.__module__).rsplit(".", 1)[-1]  # a wardrobe tool's is `main`
    return module if tool.name == "main" else f"{module}-{tool.name}"


@pytest.mark.parametrize("tool", TOOLS, ids=tool_id)
def test_every_option_a_tool_shows_is_in_a_section_of_its_help(tool: click.Command) -> None:
    context = tool.make_context(tool.name, ["--help"], resilient_parsing=True)
    shown = [param.name for param in tool.get_params(context)
             if isinstance(param, click.Option) and param.get_help_record(context)]
    assert [name for name in shown if name not in SECTION_OF] == []
    assert "Other options" not in tool.get_help(context)
    assert "Other options" not in help_of(tool, "--help-all")


# What click wraps the help at on a terminal of 80 columns (two less).
SCREEN_WIDTH = 78


def help_of(tool: click.Command, flag: str) -> str:
    shown = CliRunner().invoke(tool, [flag], terminal_width=SCREEN_WIDTH)
    assert shown.exit_code == 0, shown.output
    return shown.output


def options_named(text: str) -> set[str]:
    """The options a help screen lists: the flags in the first column of its option lines
    (`  -h, --help  Show ...`), not those its help texts name."""
    return {word.rstrip(",") for line in text.splitlines() if line.startswith("  -")
            for word in line[2:].split("  ")[0].split() if word.startswith("-")}


def visible_options(tool: click.Command) -> list[click.Option]:
    context = tool.make_context(tool.name, [], resilient_parsing=True)
    return [param for param in tool.get_params(context)
            if isinstance(param, click.Option) and not param.hidden]


@pytest.mark.parametrize("tool", TOOLS, ids=tool_id)
def test_each_tool_s_first_help_fits_a_screen_and_shows_what_is_declared_first(
        tool: click.Command) -> None:
    first = help_of(tool, "--help")
    assert len(first.splitlines()) <= 32, first
    declared_first = {flag for param in visible_options(tool) if getattr(param, "first", False)
                      for flag in param.opts}
    assert declared_first  # what the runbook needs of this tool
    assert options_named(first) == declared_first | {"--help-all", "-h", "--help"}, first
    assert "--help-all                 Show every option, in sections, and exit." in first


@pytest.mark.parametrize("tool", TOOLS, ids=tool_id)
def test_help_all_lists_every_option_of_the_tool(tool: click.Command) -> None:
    everything = help_of(tool, "--help-all")
    every_flag = {flag for param in visible_options(tool) for flag in param.opts}
    assert options_named(everything) == every_flag
    assert len(every_flag) > len(options_named(help_of(tool, "--help")))


@pytest.mark.parametrize("tool", [backfill.main, rollback.main], ids=tool_id)
def test_a_writing_tool_s_defaults_are_run_options_defaults(
        tool: click.Command, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BACKFILL_ENVIRONMENT", "BACKFILL_TARGET_FIELD", "BACKFILL_THROTTLE_URL",
                 "BACKFILL_NOTIFY_URL", "BACKFILL_MAX_WRITES_PER_SECOND",
                 "CLOUD_RUN_EXECUTION"):
        monkeypatch.delenv(name, raising=False)
    params: dict[str, Any] = tool.make_context(tool.name, []).params
    params.pop("log_format")
    params.pop("list_runs", None)
    assert RunOptions(**params) == RunOptions()


def test_a_printed_resume_types_where_the_run_is_its_ledger_and_its_gate_as_given() -> None:
    labels = Labels(title="t", done="d", would="w", sample="s",
                    script="run_backfill_production.py")
    options = RunOptions(environment="staging", project="my project", database="db-2",
                         ledger_collection="runs", throttle_url=("http://app:8080/health",),
                         throttle_interval=0.5, max_throttle_seconds=60.0,
                         output_dir=Path("out"),
                         explicit=frozenset({"throttle_interval", "throttle_url"}))
    assert labels.resume_command(options, "bf-1", shard="1/4").split(" ", 2)[2] == (
        "--environment staging --project 'my project' --database db-2 "
        "--ledger-collection runs --resume bf-1 --shard 1/4 "
        "--throttle-url http://app:8080/health --throttle-interval 0.5")
    plain = RunOptions()
    assert labels.resume_command(plain, "bf-2").split(" ", 2)[2] == (
        "--environment development --resume bf-2")
