"""Credentials never leave the origin they were given for: a health URL or a webhook with
`user:password@` whose server redirects to another host. A probe redirected elsewhere is
unhealthy, and says why; a webhook redirected is not delivered, and says so. On the real
emulator, with the tools as an operator types them and both servers served here."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from backfill.errors import ExitCode
from run_backfill_production import main as backfill
from tests.conftest import Database
from tests.helpers import serve, stop_serving
from tools.sample_data import make_wardrobe

CREDENTIALS = "ops:hunter2"
AUTHORIZATION = "Basic " + base64.b64encode(CREDENTIALS.encode()).decode()


class Server:
    """Answers 200, or 302 to `away` (another origin) for paths under /away, or 302 to
    its own /ok for paths under /near; keeps what it heard: method, path, Authorization."""

    def __init__(self, away: str | None = None) -> None:
        self.heard: list[tuple[str, str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                server.heard.append((self.command, self.path,
                                     self.headers.get("Authorization")))
                target = (away if self.path.startswith("/away") else
                          "/ok" if self.path.startswith("/near") else None)
                self.send_response(200 if target is None else 302)
                if target is not None:
                    self.send_header("Location", target)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = serve(Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        stop_serving(self.server)


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server]]:
    """The URL's own server, and the other origin it redirects to."""
    elsewhere = Server()
    own = Server(away=f"{elsewhere.origin}/collect")
    yield own, elsewhere
    own.close()
    elsewhere.close()


def with_credentials(origin: str, path: str) -> str:
    return origin.replace("http://", f"http://{CREDENTIALS}@") + path


@pytest.mark.slow
def test_a_health_probe_redirected_to_another_origin_is_unhealthy_and_sends_it_nothing(
        db: Database, servers: tuple[Server, Server]) -> None:
    """Before: the redirect was followed with the Authorization header, the other host's
    200 counted as healthy, and the run completed (exit 0)."""
    own, elsewhere = servers
    db.seed(make_wardrobe(30))
    seeded = db.update_times()
    done = db.invoke(backfill, ["--yes", "--throttle-url", with_credentials(
        own.origin, "/away"), "--throttle-interval", "0.1", "--max-throttle-seconds", "1"])
    assert done.exit_code == ExitCode.FATAL, done.output
    assert elsewhere.heard == []
    assert own.heard[0] == ("GET", "/away", AUTHORIZATION)
    assert (f"⏸  Throttled: {own.origin}/away answered 302, a redirect to another origin "
            f"({elsewhere.origin}), not followed: nothing new is read or written") in \
        done.stderr
    assert "hunter2" not in done.output
    assert db.update_times() == seeded
    # Within its own origin, a redirect is followed, with the credentials.
    near = db.invoke(backfill, ["--yes", "--throttle-url", with_credentials(
        own.origin, "/near"), "--throttle-interval", "0.1", "--max-throttle-seconds", "1"])
    assert near.exit_code == 0, near.output
    assert ("GET", "/ok", AUTHORIZATION) in own.heard and elsewhere.heard == []
    db.assert_normalized()


def test_a_webhook_redirected_to_another_origin_is_not_delivered_and_sends_it_nothing(
        db: Database, servers: tuple[Server, Server]) -> None:
    """Before: the POST was turned into a GET to the other host, with the Authorization
    header, and its 200 counted as delivered: nothing was said."""
    own, elsewhere = servers
    db.seed(make_wardrobe(30))
    done = db.invoke(backfill, ["--yes", "--notify-url", with_credentials(
        own.origin, "/away/hook")])
    assert done.exit_code == 0, done.output
    assert elsewhere.heard == []
    assert own.heard == [("POST", "/away/hook", AUTHORIZATION)]  # a redirect: not tried again
    assert (f"⚠️  the notification to {own.origin} was not delivered: it answered 302, a "
            f"redirect to another origin ({elsewhere.origin}), not followed") in done.stderr
    assert "hunter2" not in done.output
    # Within its own origin too: a POST redirected would lose its body.
    near = db.invoke(backfill, ["--yes", "--force", "--notify-url", with_credentials(
        own.origin, "/near")])
    assert near.exit_code == 0, near.output
    assert (f"the notification to {own.origin} was not delivered: it answered 302, a "
            "redirect, not followed (a webhook is posted to its URL)") in near.stderr
    assert [method for method, _, _ in own.heard] == ["POST", "POST"]
