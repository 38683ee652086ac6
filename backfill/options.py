"""A tool's options as one value, which of them the operator gave, and the settings a run
records in the ledger so that a resume carries the same run on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from backfill.errors import ConfigurationError
from backfill.health_url import parse_health_urls, shown_urls
from backfill.limits import RESUME_LATEST as RESUME_LATEST  # where the tools' callers find it
from backfill.option_specs import (
    PACE_SETTINGS,
    RECORDED_SETTINGS,
    RUN_SPECS,
    SPEC,
    RunOptionFields,
    Whole,
    option_name,
)
from backfill.ratelimit import workable_number
from backfill.retry import RetryPolicy
from backfill.target_field import FieldRules
from backfill.where import Condition, parse_where

HEALTH_GATE = "throttle_urls"  # in a run's recorded settings: its health URLs, as shown


@dataclass(frozen=True)
class RunOptions(RunOptionFields):
    """The options of a run (declared with their defaults in backfill.option_specs)."""

    # The options the operator gave (command line or environment), not defaults; and of
    # those, the ones that came from the environment (a resume typed in the same console
    # has them again).
    explicit: frozenset[str] = field(default=frozenset(), compare=False)
    from_environment: frozenset[str] = field(default=frozenset(), compare=False)
    # A one-field tool's field (its default, ...); None: a task, writing the paths it returns.
    field_rules: FieldRules | None = field(default=None, compare=False)

    def of_group(self, group: str) -> dict[str, Any]:
        """The values of the options of one group (backfill.option_specs), by name."""
        return {name: getattr(self, name) for name, spec, _ in RUN_SPECS if spec.group == group}

    def arguments(self) -> dict[str, Any]:
        """The options as recorded in the ledger and the log: no secret, health URLs
        without their query strings (they may hold a token), webhooks by their host."""
        recorded = {name: str(value) if isinstance(value, Path) else
                    sorted(value) if isinstance(value, frozenset) else value
                    for name, value in asdict(self).items()}
        recorded["throttle_url"] = self.health_gate()
        recorded["notify_url"] = shown_urls(self.notify_url)
        return recorded

    def health_gate(self) -> list[str]:
        """The health URLs as recorded and shown: scheme, host, port and path only."""
        return [url.shown for url in parse_health_urls(self.throttle_url)]

    def settings(self, target_field: str | None) -> dict[str, Any]:
        """What a run records of itself, for a resume to carry on as the same run: among
        it, whether the run was gated by the backend's health, and by which URLs (and a
        task's version)."""
        version = {"task_version": self.task_version} if self.task else {}
        return {**{name: getattr(self, name) for name in RECORDED_SETTINGS},
                "target_field": target_field, HEALTH_GATE: self.health_gate(), **version}

    def carrying_on(self, run_id: str, recorded: Mapping[str, Any],
                    pace_changed: bool) -> RunOptions:
        """These options for a resume of run `run_id`: its `recorded` settings, which an
        explicit option may repeat but not contradict (`pace_changed`: its pace was set
        while it ran)."""
        changes: dict[str, Any] = {}
        for name in RECORDED_SETTINGS:
            if name not in recorded:
                continue
            value = recorded[name]
            if SPEC[name].multiple:  # a list in the ledger
                value = tuple(value or ())
            mine = getattr(self, name)
            if name in self.explicit and mine != value:
                how = ("was set to" if name in PACE_SETTINGS and pace_changed
                       else "was started with")
                # A pace is changed on the run itself, and the resume carries it on.
                leave = (f"leave the option out; to change its pace first: "
                         f"{_set_command(name, mine, run_id)}"
                         if name in PACE_SETTINGS else "leave the option out, or start a new run")
                raise ConfigurationError(
                    f"run {run_id} {how} {option_name(name)} "
                    f"{_shown(value)}; this resume says {_shown(mine)}: a resume carries the "
                    f"same run on ({leave})")
            unpaced = recorded.get("max_writes_per_second") == 0  # its start is moot
            if name in PACE_SETTINGS and not _workable(name, value) and \
                    not (unpaced and name == "initial_writes_per_second"):
                raise ConfigurationError(
                    f"run {run_id} has {option_name(name)} {_shown(value)} recorded, "
                    f"which cannot work: set a pace that can "
                    f"({_set_command(name, None, run_id)}), then resume")
            changes[name] = value
        gate = list(recorded.get(HEALTH_GATE) or [])
        if gate and not self.throttle_url and not self.no_throttle:
            raise ConfigurationError(
                f"run {run_id} was gated by the backend's health (--throttle-url "
                f"{' '.join(gate)}): give the URL again (--throttle-url, or "
                "BACKFILL_THROTTLE_URL, with its query string if it had one: that is not "
                "recorded), or --no-throttle to go on without the gate")
        return replace(self, **changes)

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return parse_where(self.where)

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(max_total_wait=self.max_retry_seconds)


def _workable(name: str, value: Any) -> bool:
    """Whether a pace read back from the ledger can work, as the options' own limits say."""
    kind = SPEC[name].kind
    if isinstance(kind, Whole):
        return workable_number(value, whole=True, low=kind.low, high=kind.high)
    return workable_number(value, zero=name == "max_writes_per_second")


def _set_command(name: str, value: Any, run_id: str) -> str:
    """The control's command that changes `name` on a run (its resume carries it on)."""
    option = "--parallel-batches" if name == "parallel_batches" else "--writes-per-second"
    return f"backfill_control.py set {option} {'N' if value is None else _shown(value)} {run_id}"


def _shown(value: Any) -> str:
    if value is None or value == ():
        return "(none)"
    if isinstance(value, tuple):
        return " ".join(value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)
