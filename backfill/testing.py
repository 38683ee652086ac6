"""Testing a task against the real Firestore emulator, from a task's own tests (pytest).

In the tests' conftest.py:

    pytest_plugins = ["backfill.testing"]

then a test takes `task_database`: a Firestore client on a project of its own, on an
emulator the session starts (and stops, its whole process group), with the variables a
run reads set (FIRESTORE_EMULATOR_HOST, GOOGLE_CLOUD_PROJECT; unpaced):

    def test_emails_are_lowercased(task_database, tmp_path):
        task_database.collection("users").document("a").set({"email": "A@B.io"})
        stats = run_task(LowercaseEmails, output_dir=tmp_path)
        assert task_database.collection("users").document("a").get().get("emailLower") == "a@b.io"

The emulator comes with the Google Cloud SDK and needs Java 17; when it cannot start,
the tests fail and say why.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest
from google.cloud import firestore

from backfill.emulator import Emulator

_projects = itertools.count(1)


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[Emulator]:
    """One emulator for the session."""
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def task_database(firestore_emulator: Emulator, request: pytest.FixtureRequest,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[firestore.Client]:
    """A client on a project of this test's own, the run's variables pointing at it."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())
    project = f"task-{next(_projects)}-{name}"[:30].rstrip("-")
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", project)
    monkeypatch.setenv("BACKFILL_MAX_WRITES_PER_SECOND", "0")
    client = firestore.Client(project=project)
    yield client
    client.close()
