"""Each option declared once (backfill.option_specs): the tools' click options, RunOptions,
the --help sections and a printed resume command all say what the declaration says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest

from backfill.commands import backfill, control, rollback, validate, vocabulary
from backfill.console import Labels
from backfill.option_specs import SECTION_OF
from backfill.options import RunOptions

TOOLS = [backfill.main, rollback.main, validate.main, vocabulary.main, control.main]


@pytest.mark.parametrize("tool", TOOLS, ids=lambda tool: tool.name)
def test_every_option_a_tool_shows_is_in_a_section_of_its_help(tool: click.Command) -> None:
    context = tool.make_context(tool.name, ["--help"], resilient_parsing=True)
    shown = [param.name for param in tool.get_params(context)
             if isinstance(param, click.Option) and param.get_help_record(context)]
    assert [name for name in shown if name not in SECTION_OF] == []
    assert "Other options" not in tool.get_help(context)


@pytest.mark.parametrize("tool", [backfill.main, rollback.main], ids=lambda tool: tool.name)
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
