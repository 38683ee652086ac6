"""The health gate's rules, against a health endpoint served here: what is unhealthy, when
the gate opens again, and every URL of BACKFILL_THROTTLE_URL probed."""

from __future__ import annotations

import json

from backfill.throttle import HEALTHY_PROBES_TO_REOPEN, Gate, HealthCheck, HealthWatch
from run_backfill_production import main as backfill
from tests.conftest import Database
from tests.helpers import Backend, dead_address


def test_a_backend_that_does_not_answer_is_unhealthy() -> None:
    address = dead_address()
    reason = HealthCheck([f"http://{address}/health?token=s3cret"]).unhealthy()
    assert reason == f"http://{address}/health did not answer (ConnectionRefusedError)"


def test_the_gate_opens_again_after_three_healthy_probes_in_a_row(backend: Backend) -> None:
    assert HEALTHY_PROBES_TO_REOPEN == 3  # the README's rule
    gate = Gate()
    watch = HealthWatch(HealthCheck([backend.url]), gate)
    backend.mode = "failing"
    watch.probe_once()
    assert gate.state == "throttled"
    backend.mode = "healthy"
    watch.probe_once()
    watch.probe_once()
    backend.mode = "failing"  # a failure in between starts the count again
    watch.probe_once()
    backend.mode = "healthy"
    for _ in range(2):
        watch.probe_once()
        assert gate.state == "throttled"
    watch.probe_once()
    assert gate.state == "running"
    assert gate.throttle_spells == 1


def test_every_url_of_the_variable_is_probed(db: Database, backend: Backend) -> None:
    db.seed({"a": {"style": ["Goth"]}})
    failing = Backend()
    try:
        failing.mode = "failing"
        env = {**db.env, "BACKFILL_THROTTLE_URL": f"{backend.url} {failing.url}"}
        result = db.invoke(backfill, ["--max-throttle-seconds", "1", "--throttle-interval",
                                      "0.2", "--json"], env=env)
        assert result.exit_code == 3, result.output
        host = failing.url.split("/")[2]
        assert (f"❌ throttled for more than 1s (--max-throttle-seconds): http://{host}/health "
                "answered 503") in result.stderr
        assert backend.probes >= 1 and failing.probes >= 1
        assert json.loads(result.stdout)["status"] == "failed"
    finally:
        failing.close()
    assert "normalized" not in db.documents()["a"]
