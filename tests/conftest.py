"""The real Firestore emulator for the whole session, and a fresh project per test.

No mock Firestore: every test that talks to a database talks to the emulator. If it
cannot start, every such test fails with the reason and how to install it. No test sees
the variables of the console the suite runs in (tests/helpers.caller_free).
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import signal
import subprocess
import sys
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from google.cloud import firestore
from hypothesis import settings

from backfill.emulator import Emulator, EmulatorError
from normalizer import FACETS, normalize_item
from run_backfill_production import main as backfill
from scripts.backfill_rollback import main as rollback
from scripts.backfill_validation import main as validate
from scripts.vocabulary_report import main as vocabulary
from tests.helpers import (
    REPO,
    ROLLBACK,
    SCRIPT,
    VALIDATION,
    VOCABULARY,
    Backend,
    caller_free,
    is_callers,
    kill_leftovers,
)
from tools.seed import seed
from tools.tcp_proxy import TcpProxy

__all__ = ["REPO", "Database"]
# The runbook's scripts, by the path a test runs them by, and the command each runs.
TOOLS = {SCRIPT: backfill, ROLLBACK: rollback, VALIDATION: validate,
         VOCABULARY: vocabulary}
_project_numbers = itertools.count(1)
# Hypothesis's per-example deadline would measure the machine's load (parallel workers
# beside the emulator, a busy core), not the code: speed is `make bench`'s to measure.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


@pytest.fixture(autouse=True)
def no_caller_variables(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process tools (CliRunner, engine calls) read os.environ: none of the console's
    BACKFILL_*, GOOGLE_*, FIREBASE_*, CLOUD_RUN_*, JOB_* ... variables reach them. And no
    tool process a test started outlives it."""
    for name in [n for n in os.environ if is_callers(n)]:
        monkeypatch.delenv(name)
    yield
    kill_leftovers()


# With parallel workers (pytest-xdist, as `make test` runs), one emulator serves the whole
# session: the controller starts it before the workers, tells each its address (or why it
# could not start), and stops it when the session ends, however it ends. Without workers,
# the session fixture starts and stops it, as the first test that needs it asks.
EMULATOR_HOST = "firestore_emulator_host"
EMULATOR_ERROR = "firestore_emulator_error"
_shared = pytest.StashKey[Emulator | str]()


def _distributed(config: pytest.Config) -> bool:
    """Whether this process is the controller of parallel workers."""
    return not hasattr(config, "workerinput") and bool(
        getattr(config.option, "numprocesses", None)) and config.getoption("dist") != "no"


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        # A worker starts with SIGINT ignored (so that a Ctrl-C reaches the controller);
        # the tools it starts would inherit that and never see the Ctrl-C a test sends.
        # As in a console: Python's own handler here, the default in what it starts.
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not _distributed(session.config):
        return
    try:
        started: Emulator | str = Emulator(env=caller_free()).start()
    except EmulatorError as error:
        started = str(error)
    session.config.stash[_shared] = started
    if isinstance(started, Emulator):
        atexit.register(started.stop)  # should the session end before its last hook


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """(pytest-xdist, in the controller) What a worker is given: the emulator's address."""
    shared = node.config.stash.get(_shared, "the controller started no emulator")
    key, value = ((EMULATOR_HOST, shared.host) if isinstance(shared, Emulator)
                  else (EMULATOR_ERROR, shared))
    node.workerinput[key] = value


def pytest_sessionfinish(session: pytest.Session) -> None:
    shared = session.config.stash.get(_shared, None)
    if isinstance(shared, Emulator):
        shared.stop()


@pytest.fixture(scope="session")
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    given: dict[str, str] | None = getattr(request.config, "workerinput", None)
    if given is not None:  # a worker: the controller's emulator
        if EMULATOR_ERROR in given:
            pytest.fail(given[EMULATOR_ERROR], pytrace=False)
        yield Emulator.running_at(given[EMULATOR_HOST])
        return
    try:
        running = Emulator(env=caller_free()).start()
    except EmulatorError as error:
        pytest.fail(str(error), pytrace=False)
    yield running
    running.stop()


@dataclass
class Database:
    """One test's own project on the shared emulator, and ways to run the tools on it."""

    emulator: Emulator
    project: str
    client: firestore.Client
    output_dir: Path
    collection: str = "wardrobe"
    paced: bool = False  # the test is about pace: the tools keep their own

    @property
    def env(self) -> dict[str, str]:
        """What a tool sees, in-process or as a subprocess: this project on the emulator,
        and none of the console's own variables. Unpaced, unless the test is about pace
        (marked `paced`): a test does not wait for what it does not test."""
        unpaced = {} if self.paced else {"BACKFILL_MAX_WRITES_PER_SECOND": "0"}
        return caller_free(FIRESTORE_EMULATOR_HOST=self.emulator.host,
                           GOOGLE_CLOUD_PROJECT=self.project, **unpaced)

    def seed(self, items: dict[str, dict[str, Any]] | list[tuple[str, dict[str, Any]]],
             collection: str | None = None) -> None:
        pairs = list(items.items()) if isinstance(items, dict) else items
        seed(self.client, collection or self.collection, pairs)

    def documents(self, collection: str | None = None) -> dict[str, dict[str, Any]]:
        ref = self.client.collection(collection or self.collection)
        return {snap.id: snap.to_dict() or {} for snap in ref.stream()}

    def update_times(self, collection: str | None = None) -> dict[str, Any]:
        ref = self.client.collection(collection or self.collection)
        return {snap.id: snap.update_time for snap in ref.select([]).stream()}

    def count(self, collection: str | None = None) -> int:
        """How many documents, by an aggregation query (no documents read)."""
        query = self.client.collection(collection or self.collection).count(alias="n")
        return int(query.get()[0][0].value)

    def count_where_map(self, field: str = "normalized") -> int:
        """Items whose `field` is a map: what a run has written so far (sample data carries
        no map there, only some nulls). Maps sort after every other type in Firestore."""
        query = self.client.collection(self.collection).where(
            filter=firestore.FieldFilter(field, ">=", {})).count(alias="n")
        return int(query.get()[0][0].value)

    def invoke(self, command: Any, args: list[str], input: str | None = None,
               env: dict[str, str] | None = None) -> Result:
        """Run a click command in-process, as an operator would type it."""
        return CliRunner().invoke(command, [*args, "--output-dir", str(self.output_dir)],
                                  input=input, env=env or self.env, catch_exceptions=False)

    def run_script(self, script: str, args: list[str], input: str | None = None,
                   env: dict[str, str] | None = None,
                   timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a script as a real process from the repo root, as the runbook shows."""
        return subprocess.run(
            [sys.executable, script, *args, "--output-dir", str(self.output_dir)],
            cwd=REPO, env=env or self.env, input=input, capture_output=True, text=True,
            timeout=timeout)

    def run_tool(self, script: str, args: list[str], input: str | None = None,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """What run_script gives, from the script's command run in-process: for a test that
        checks what a tool does, prints and exits with, not that it is a process of its own
        (a signal, a kill, a second process, the script file itself)."""
        result = self.invoke(TOOLS[script], args, input=input, env=env)
        return subprocess.CompletedProcess([script, *args], result.exit_code, result.stdout,
                                           result.stderr)

    def stats_files(self, prefix: str) -> list[Path]:
        return sorted(self.output_dir.glob(f"{prefix}_*.json"))

    def assert_normalized(self, except_ids: Collection[str] = ()) -> None:
        """Every item (but those excepted) carries the normalized tags of its current content."""
        for doc_id, item in self.documents().items():
            if doc_id in except_ids:
                continue
            assert isinstance(item.get("normalized"), dict), doc_id
            assert {f: item["normalized"][f] for f in FACETS} == normalize_item(item), doc_id


@pytest.fixture
def proxy(db: Database) -> Iterator[TcpProxy]:
    """The project's TCP proxy in front of the emulator: delay, faults, bytes counted."""
    with TcpProxy(db.emulator.host, delay=0.004) as running:
        yield running


@pytest.fixture
def backend() -> Iterator[Backend]:
    """The app's health endpoint, served here; its mode is the test's to set."""
    running = Backend()
    yield running
    running.close()


@pytest.fixture(scope="session")
def private_key() -> str:
    """A service-account private key made here (PEM), for credentials checked offline."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture
def db(emulator: Emulator, request: pytest.FixtureRequest, tmp_path: Path,
       monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    # Unique across parallel workers too: the worker's name (gw0, gw1, ...) comes first.
    # A project ID has at most 30 characters and ends with a letter or a digit.
    prefix = f"t{os.environ.get('PYTEST_XDIST_WORKER', '')}-{next(_project_numbers)}-"
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())
    project = (prefix + name)[:30].rstrip("-")
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", emulator.host)
    client = firestore.Client(project=project)
    yield Database(emulator, project, client, tmp_path / "out",
                   paced=request.node.get_closest_marker("paced") is not None)
    client.close()
    emulator.reset(project)
