"""The health gate's rules, against a health endpoint served here: what is unhealthy, when
the gate opens again, and every URL of BACKFILL_THROTTLE_URL probed."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from backfill.health_url import parse_health_urls
from backfill.throttle import HEALTHY_PROBES_TO_REOPEN, Gate, HealthCheck, HealthWatch
from run_backfill_production import main as backfill
from tests.conftest import Database
from tests.helpers import Backend, dead_address


def test_a_backend_that_does_not_answer_is_unhealthy() -> None:
    address = dead_address()
    reason = HealthCheck(parse_health_urls((f"http://{address}/health?token=s3cret",))).unhealthy()
    assert reason == f"http://{address}/health did not answer (ConnectionRefusedError)"


def test_the_gate_opens_again_after_three_healthy_probes_in_a_row(backend: Backend) -> None:
    assert HEALTHY_PROBES_TO_REOPEN == 3  # the README's rule
    gate = Gate()
    watch = HealthWatch(HealthCheck(parse_health_urls((backend.url,))), gate)
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


@pytest.mark.slow
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


class Dribbler:
    """A health endpoint that starts a 200 answer, then sends one byte every 1.5 s."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/health"
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.open:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._dribble, args=(connection,), daemon=True).start()

    def _dribble(self, connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            connection.recv(4096)
            connection.sendall(b"HTTP/1.1 200 OK\r\n")
            while self.open:
                time.sleep(1.5)
                connection.sendall(b"X")

    def close(self) -> None:
        self.open = False
        self.server.close()


@pytest.fixture
def dribbler() -> Iterator[Dribbler]:
    running = Dribbler()
    yield running
    running.close()


def test_an_answer_that_trickles_in_is_unhealthy_at_the_limit(dribbler: Dribbler) -> None:
    check = HealthCheck(parse_health_urls((dribbler.url,)), max_latency_ms=300)
    started = time.monotonic()
    reason = check.unhealthy()
    assert time.monotonic() - started < 1.0
    host = dribbler.url.split("/")[2]
    assert reason == (f"http://{host}/health did not answer within 300 ms "
                      "(--throttle-max-latency-ms)")
    # The probe still waiting is not joined by another one.
    assert check.unhealthy() == (f"http://{host}/health has not answered the probe before "
                                 "this one")


@pytest.mark.slow
def test_a_trickling_backend_never_holds_a_run_past_its_limit(db: Database,
                                                              dribbler: Dribbler) -> None:
    db.seed({"a": {"style": ["Goth"]}, "b": {"style": ["Boho"]}})
    started = time.monotonic()
    result = db.invoke(backfill, ["--throttle-url", dribbler.url, "--throttle-interval",
                                  "0.2", "--throttle-max-latency-ms", "300",
                                  "--max-throttle-seconds", "2", "--json"])
    assert result.exit_code == 3, result.output
    assert time.monotonic() - started < 2 + 15
    assert "❌ throttled for more than 2s (--max-throttle-seconds): " in result.stderr
    assert json.loads(result.stdout)["status"] == "failed"
    assert all("normalized" not in item for item in db.documents().values())
