"""--notify-url: a webhook served here hears of every end of a real run on the emulator,
exactly once; a webhook that fails, hangs or is not there changes nothing but one line;
its secret (the URL's path and query) is nowhere but in the request it was sent."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from backfill.ledger import DEFAULT_LEDGER_COLLECTION
from backfill.logs import LOG_FILE_NAME
from tests.conftest import Database
from tests.helpers import (
    REPO,
    SCRIPT,
    dead_address,
    printed_resume,
    serve,
    start,
    stop_serving,
    wait_for,
)
from tools.sample_data import make_wardrobe

SECRET_PATH = "/services/T0001/B0002/pathSECRETxyz"
SECRET_QUERY = "token=querySECRETabc"


class Webhook:
    """A chat webhook: answers 200, 500, or hangs, as the test says; keeps every post."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts.append((self.path, json.loads(body)))
                if hook.mode == "hang":
                    hook.release.wait(30)
                    return
                self.send_response(500 if hook.mode == "failing" else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = serve(Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.host}{SECRET_PATH}?{SECRET_QUERY}"

    def close(self) -> None:
        self.release.set()
        stop_serving(self.server)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    running = Webhook()
    yield running
    running.close()


def everything_written(db: Database, *texts: str) -> str:
    """All an operator could read afterwards: outputs, the log, stats files, the ledger
    (runs, shards, journals, the lease)."""
    files = [p.read_text() for p in db.output_dir.iterdir() if p.is_file()]
    ledger = [snap.to_dict() for collection in [db.client.collection(
        DEFAULT_LEDGER_COLLECTION)] for snap in collection.stream()]
    nested = [snap.to_dict() for doc in db.client.collection(DEFAULT_LEDGER_COLLECTION)
              .list_documents() for sub in doc.collections() for snap in sub.stream()]
    return "\n".join([*texts, *files, json.dumps([ledger, nested], default=str)])


@pytest.mark.slow
def test_a_run_posts_exactly_once_with_its_status_and_counts_and_the_secret_is_nowhere(
        db: Database, webhook: Webhook) -> None:
    db.seed(make_wardrobe(120))
    done = db.run_tool(SCRIPT, ["--yes", "--quiet", "--job-id", "bf-n",
                                  "--notify-url", webhook.url])
    assert done.returncode == 0, done.stderr
    [(path, message)] = webhook.posts
    assert path == f"{SECRET_PATH}?{SECRET_QUERY}"
    run = message["run"]
    assert (run["id"], run["tool"], run["status"], run["reason"]) == (
        "bf-n", "backfill", "completed", None)
    assert run["counts"] == {"processed": 120, "updated": 120, "skipped": 0, "vanished": 0,
                             "errors": 0}
    assert message["text"].startswith(f"✅ backfill run bf-n of wardrobe (development, "
                                      f"project {db.project}) completed: 120 processed, "
                                      "120 written, 0 errors, in ")
    written = everything_written(db, done.stdout, done.stderr)
    assert "SECRET" not in written
    assert f"http://{webhook.host}" in (db.output_dir / LOG_FILE_NAME).read_text()


@pytest.mark.slow
def test_an_interrupted_run_posts_once_and_a_dry_run_posts_nothing(
        db: Database, webhook: Webhook) -> None:
    db.seed(make_wardrobe(3000))
    dry = db.run_tool(SCRIPT, ["--dry-run", "--quiet", "--notify-url", webhook.url])
    assert dry.returncode == 0, dry.stderr
    assert webhook.posts == []
    process, log = start(db, {**db.env, "BACKFILL_NOTIFY_URL": webhook.url}, "--job-id",
                         "bf-i", "--batch-size", "20", "--max-writes-per-second", "200")
    wait_for(log, "Batch 2:")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130, log.read_text()
    [(_, message)] = webhook.posts
    assert message["run"]["status"] == "interrupted" and message["run"]["reason"] == "SIGINT"
    assert 0 < message["run"]["counts"]["updated"] < 3000
    assert message["text"].startswith("❌ backfill run bf-i of wardrobe") and \
        message["text"].endswith("; SIGINT")


def run_time(db: Database, *args: str) -> tuple[float, Any]:
    started = time.monotonic()
    done = db.run_tool(SCRIPT, ["--yes", "--quiet", "--notify-timeout-seconds", "1",
                                  *args])
    return time.monotonic() - started, done


@pytest.mark.parametrize("mode, said", [
    ("failing", "it answered 500"),
    ("hang", "it did not answer"),
    ("absent", "it did not answer (ConnectionRefusedError)"),
])
@pytest.mark.slow
def test_a_webhook_that_fails_hangs_or_is_absent_changes_neither_the_exit_nor_much_time(
        db: Database, webhook: Webhook, mode: str, said: str) -> None:
    db.seed(make_wardrobe(60))
    baseline, done = run_time(db, "--force", "--notify-url", webhook.url)
    assert done.returncode == 0 and len(webhook.posts) == 1, done.stderr
    webhook.posts.clear()
    url = webhook.url
    if mode == "absent":
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{unused.getsockname()[1]}{SECRET_PATH}"
    webhook.mode = mode
    took, done = run_time(db, "--force", "--notify-url", url)
    assert done.returncode == 0, done.stderr
    assert took - baseline < 2 * 1 + 2.5, (took, baseline)  # 2 tries of 1 s, and noise
    [line] = [line for line in done.stderr.splitlines() if "notification" in line]
    host = url.split("/")[2]
    assert line.startswith(f"⚠️  the notification to http://{host} was not delivered: {said}")
    assert line.removeprefix("⚠️  ") in (db.output_dir / LOG_FILE_NAME).read_text()
    assert len(webhook.posts) == (2 if mode in ("failing", "hang") else 0)
    assert "SECRET" not in everything_written(db, done.stdout, done.stderr)


@pytest.mark.parametrize("url, problem", [
    ("ftp://hooks.example/x", "only http:// and https:// URLs are called"),
    ("https:///services/x", "it has no host"),
    ("", "it is empty"),
])
def test_a_bad_webhook_url_is_exit_2_before_anything_is_read(
        db: Database, url: str, problem: str) -> None:
    env = {**db.env, "FIRESTORE_EMULATOR_HOST": dead_address()}
    done = db.run_tool(SCRIPT, ["--yes", "--notify-url", url], env=env)
    assert done.returncode == 2, done.stderr
    assert (f"❌ the 1st --notify-url (or BACKFILL_NOTIFY_URL) is not a webhook URL this "
            f"tool can post to: {problem} (the URL is not shown") in done.stderr


@pytest.mark.paced  # its first run's own pace, which its resume carries on
@pytest.mark.slow
def test_the_printed_resume_says_the_webhook_it_lacks_and_never_its_secret(
        db: Database, webhook: Webhook) -> None:
    """Before: the resume command was printed with no word of the webhook; typed as
    printed, the resumed run completed and told nobody."""
    db.seed(make_wardrobe(400))
    process, log = start(db, db.env, "--job-id", "bf-r", "--notify-url", webhook.url,
                         "--batch-size", "20", "--max-writes-per-second", "100")
    wait_for(log, "Batch 1:")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130, log.read_text()
    said = log.read_text().splitlines()
    command = printed_resume(log)
    resume_line = next(i for i, line in enumerate(said) if "To continue from" in line)
    assert said[resume_line + 1] == (
        f"   (add --notify-url for each webhook this run tells (http://{webhook.host}): its "
        "URL is not shown, as it may hold a secret; typed as printed, the resumed run tells "
        "no webhook)")
    assert "SECRET" not in log.read_text()
    # As the note says: added, the resumed run tells the webhook of its end.
    done = subprocess.run([*command, "--yes", "--quiet", "--output-dir", str(db.output_dir),
                           "--notify-url", webhook.url], cwd=REPO, env=db.env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [message["run"]["status"] for _, message in webhook.posts] == [
        "interrupted", "completed"]
    # A webhook from the variable is there again in the same console: no note.
    db.seed(make_wardrobe(400))
    process, log = start(db, {**db.env, "BACKFILL_NOTIFY_URL": webhook.url}, "--job-id",
                         "bf-e", "--force", "--batch-size", "20",
                         "--max-writes-per-second", "100")
    wait_for(log, "Batch 1:")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130, log.read_text()
    assert printed_resume(log) and "--notify-url" not in log.read_text()
