"""A tool's options as one value, which of them the operator gave, and the settings a run
records in the ledger so that a resume carries the same run on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from backfill.control import CONTROL_POLL_SECONDS
from backfill.errors import ConfigurationError
from backfill.health_url import parse_health_urls
from backfill.lease import HEARTBEAT_SECONDS, LEASE_TIMEOUT_SECONDS
from backfill.ledger import DEFAULT_LEDGER_COLLECTION, LedgerEntry
from backfill.notify import NOTIFY_TIMEOUT_SECONDS, shown_urls
from backfill.ratelimit import RAMP_START, workable_rate
from backfill.retry import RetryPolicy
from backfill.runner import MAX_PARALLEL_BATCHES
from backfill.where import Condition, parse_where

RESUME_LATEST = "latest"
HEALTH_GATE = "throttle_urls"  # in a run's recorded settings: its health URLs, as shown
# What makes a run the run it is: recorded when it starts, taken over by --resume.
RECORDED_SETTINGS = ("collection", "target_field", "force", "batch_size", "limit",
                     "undo_run_id", "max_writes_per_second", "initial_writes_per_second",
                     "parallel_batches", "where")
# What backfill_control.py set changes on a running run (backfill.pace).
PACE_SETTINGS = ("max_writes_per_second", "initial_writes_per_second", "parallel_batches")
_OPTION_NAMES = {"undo_run_id": "--run-id", "as_json": "--json"}


def option_name(name: str) -> str:
    return _OPTION_NAMES.get(name, "--" + name.replace("_", "-"))


@dataclass(frozen=True)
class RunOptions:
    environment: str
    project: str | None
    database: str
    collection: str
    batch_size: int
    output_dir: Path
    quiet: bool
    as_json: bool
    max_retry_seconds: float
    parallel_reads: int = 4
    dry_run: bool = False
    yes: bool = False
    limit: int | None = None
    resume: str | None = None
    ledger_collection: str = DEFAULT_LEDGER_COLLECTION
    max_writes_per_second: float = 10_000.0
    initial_writes_per_second: float = RAMP_START
    parallel_batches: int = 4
    shard: str | None = None
    shard_count: int | None = None
    job_id: str | None = None
    undo_run_id: str | None = None  # rollback: the backfill run to undo exactly
    target_field: str | None = None  # None: not given (the default, or what a run recorded)
    force: bool = False  # backfill: rewrite items that are up to date
    throttle_url: tuple[str, ...] = ()  # the backend's health URLs
    no_throttle: bool = False  # a resume of a gated run, knowingly without its gate
    throttle_interval: float = 2.0
    throttle_max_latency_ms: float = 1000.0
    max_throttle_seconds: float = 1800.0
    where: tuple[str, ...] = ()  # FIELD=VALUE conditions: a subset (backfill.where)
    notify_url: tuple[str, ...] = ()  # webhooks told when the run ends (backfill.notify)
    notify_timeout_seconds: float = NOTIFY_TIMEOUT_SECONDS
    # How often a run reads its control field and renews its lease (hidden options: the
    # tests shorten them; an operator has no reason to).
    control_poll_seconds: float = CONTROL_POLL_SECONDS
    heartbeat_seconds: float = HEARTBEAT_SECONDS
    lease_timeout_seconds: float = LEASE_TIMEOUT_SECONDS
    # The options the operator gave (command line or environment), not defaults; and of
    # those, the ones that came from the environment (a resume typed in the same console
    # has them again).
    explicit: frozenset[str] = field(default=frozenset(), compare=False)
    from_environment: frozenset[str] = field(default=frozenset(), compare=False)

    @classmethod
    def from_click(cls, params: dict[str, Any]) -> RunOptions:
        """The options of the running click command, knowing which were given."""
        import click

        context = click.get_current_context()
        sources = {name: context.get_parameter_source(name) for name in params}
        given = frozenset(name for name, source in sources.items()
                          if source in (click.core.ParameterSource.COMMANDLINE,
                                        click.core.ParameterSource.ENVIRONMENT))
        environment = frozenset(name for name, source in sources.items()
                                if source == click.core.ParameterSource.ENVIRONMENT)
        return cls(**params, explicit=given, from_environment=environment)

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

    def settings(self, target_field: str) -> dict[str, Any]:
        """What a run records of itself, for a resume to carry on as the same run: among
        it, whether the run was gated by the backend's health, and by which URLs."""
        return {**{name: getattr(self, name) for name in RECORDED_SETTINGS},
                "target_field": target_field, HEALTH_GATE: self.health_gate()}

    def carrying_on(self, entry: LedgerEntry) -> RunOptions:
        """These options for a resume of `entry`: its recorded settings, which an explicit
        option may repeat but not contradict."""
        recorded = entry.settings_recorded()
        changes: dict[str, Any] = {}
        for name in RECORDED_SETTINGS:
            if name not in recorded:
                continue
            value = recorded[name]
            if name == "where":  # a list in the ledger
                value = tuple(value or ())
            mine = getattr(self, name)
            if name in self.explicit and mine != value:
                how = ("was set to" if name in PACE_SETTINGS and entry.pace_changed
                       else "was started with")
                # A pace is changed on the run itself, and the resume carries it on.
                leave = (f"leave the option out; to change its pace first: "
                         f"{_set_command(name, mine, entry.run_id)}"
                         if name in PACE_SETTINGS else "leave the option out, or start a new run")
                raise ConfigurationError(
                    f"run {entry.run_id} {how} {option_name(name)} "
                    f"{_shown(value)}; this resume says {_shown(mine)}: a resume carries the "
                    f"same run on ({leave})")
            unpaced = recorded.get("max_writes_per_second") == 0  # its start is moot
            if name in PACE_SETTINGS and not _workable(name, value) and \
                    not (unpaced and name == "initial_writes_per_second"):
                raise ConfigurationError(
                    f"run {entry.run_id} has {option_name(name)} {_shown(value)} recorded, "
                    f"which cannot work: set a pace that can "
                    f"({_set_command(name, None, entry.run_id)}), then resume")
            changes[name] = value
        gate = list(recorded.get(HEALTH_GATE) or [])
        if gate and not self.throttle_url and not self.no_throttle:
            raise ConfigurationError(
                f"run {entry.run_id} was gated by the backend's health (--throttle-url "
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
    """Whether a pace read back from the ledger can work (an older version, or a hand,
    may have recorded one that cannot): as the options' own limits say."""
    if name == "parallel_batches":
        return isinstance(value, int) and not isinstance(value, bool) and \
            1 <= value <= MAX_PARALLEL_BATCHES
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return workable_rate(value) and (value > 0 or name == "max_writes_per_second")


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
