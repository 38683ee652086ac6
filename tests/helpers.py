"""What the tests share: the environment the tools see, the tools as real processes,
waiting for what a run says, and the ledger and the database as an operator reads them.

No test reads the console's own variables: `caller_free()` is the one environment every
tool gets, in-process (the autouse fixture in conftest) and as a subprocess.
"""

from __future__ import annotations

import fcntl
import os
import pty
import random
import shlex
import socket
import string
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from click.testing import CliRunner, Result

from backfill.ledger import DEFAULT_LEDGER_COLLECTION

if TYPE_CHECKING:
    from tests.conftest import Database
    from tools.tcp_proxy import TcpProxy

REPO = Path(__file__).resolve().parent.parent
SCRIPT = "run_backfill_production.py"
ROLLBACK = "scripts/backfill_rollback.py"
VALIDATION = "scripts/backfill_validation.py"
VOCABULARY = "scripts/vocabulary_report.py"
T = TypeVar("T")

# Variables of the console the suite runs in that the tools (or the libraries under
# them) read: the service's BACKFILL_* settings, Google's and Firebase's credentials and
# project, a batch engine's task variables, and proxies that would carry the emulator's
# traffic elsewhere.
CALLER_PREFIXES = ("BACKFILL_", "GOOGLE_", "GCLOUD_", "CLOUDSDK_", "FIREBASE_", "FIRESTORE_",
                   "CLOUD_RUN_", "JOB_", "KUBERNETES_", "K_")
CALLER_NAMES = frozenset({"http_proxy", "https_proxy", "grpc_proxy", "no_proxy",
                          "all_proxy"})


def is_callers(name: str) -> bool:
    return name.startswith(CALLER_PREFIXES) or name.lower() in CALLER_NAMES


def caller_free(environ: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment without any of the caller's variables above, plus `extra`."""
    source = os.environ if environ is None else environ
    return {**{k: v for k, v in source.items() if not is_callers(k)}, **extra}


def eventually(condition: Callable[[], T], what: str | Callable[[], str],
               timeout: float = 60, every: float = 0.05) -> T:
    """Poll `condition` until it returns something true; fail with `what` (or what it
    returns, then) at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:.0f}s: "
                                 f"{what() if callable(what) else what}")
        time.sleep(every)


def settled(measure: Callable[[], T], what: str, quiet: float = 1.0,
            timeout: float = 60) -> T:
    """`measure()` once it has not changed for `quiet` seconds: the batches a held run
    still had in flight are written, however slow the machine is."""
    deadline = time.monotonic() + timeout
    value, since = measure(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, f"still changing after {timeout:.0f}s: {what}"
        time.sleep(0.1)
        now = measure()
        if now != value:
            value, since = now, time.monotonic()
    return value


def wait_for(log: Path, text: str, timeout: float = 60) -> None:
    eventually(lambda: text in log.read_text(),
               lambda: f"{text!r} never appeared in:\n{log.read_text()}", timeout)


def start(db: Database, env: dict[str, str], *args: str, script: str = SCRIPT,
          prefix: tuple[str, ...] = ()) -> tuple[subprocess.Popen[str], Path]:
    """A tool (the backfill unless said) as a real process, under `prefix` (e.g.
    in_namespaces()); its stderr goes to a file we can watch."""
    log = db.output_dir.parent / f"stderr-{time.monotonic_ns()}.txt"
    db.output_dir.mkdir(parents=True, exist_ok=True)
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [*prefix, sys.executable, script, "--yes", "--quiet", "--output-dir",
             str(db.output_dir), *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
            stderr=stderr, text=True)
    STARTED.append(process)
    return process, log


def in_namespaces(hostname: str | None = None, pid: bool = True) -> tuple[str, ...]:
    """A command prefix: the command runs as PID 1 of a PID namespace of its own (as in a
    container), and with `hostname`, under that host name (a UTS namespace of its own).
    Killing the prefix's process kills the command."""
    words = ["unshare", "--kill-child"]
    if pid:
        words += ["--pid", "--fork", "--mount-proc"]
    if hostname is None:
        return (*words, "--")
    return (*words, "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname)


# Every tool process a test started: one still running when its test ends (a failed
# assert before its wait) is killed then, not left to hold a lease or a port.
STARTED: list[subprocess.Popen[str]] = []


def kill_leftovers() -> None:
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


def via(db: Database, proxy: TcpProxy) -> dict[str, str]:
    """The tools' environment, with the database reached through the proxy."""
    return {**db.env, "FIRESTORE_EMULATOR_HOST": proxy.host}


def ledger(db: Database) -> list[dict[str, Any]]:
    """The runs in the ledger (not the collections' leases)."""
    return [entry for entry in db.documents(DEFAULT_LEDGER_COLLECTION).values()
            if entry.get("kind") != "lease"]


def control(db: Database, *args: str) -> Result:
    """scripts/backfill_control.py as typed in a second console (in-process: what is
    tested is the run's answer, not the control's process)."""
    from scripts.backfill_control import main

    return CliRunner().invoke(main, list(args), env=db.env, catch_exceptions=False)


def printed_resume(log: Path) -> list[str]:
    """The resume command a tool printed, as the operator would type it."""
    [line] = [line for line in log.read_text().splitlines()
              if "To continue from the checkpoint:" in line]
    words = shlex.split(line.split("To continue from the checkpoint: ", 1)[1])
    assert words[0] == "python3"
    return [sys.executable, *words[1:]]


_dead: list[socket.socket] = []


def dead_address() -> str:
    """host:port where no database listens, for the whole session (a port bound here and
    never listened on): a tool that reads there fails with exit 3, so a test that
    expects exit 2 proves that nothing was read."""
    if not _dead:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        _dead.append(sock)
    return f"127.0.0.1:{_dead[0].getsockname()[1]}"


def auto_ids(count: int, seed: int) -> list[str]:
    """Firestore-style auto IDs: 20 random characters of [0-9A-Za-z], sorted."""
    rng = random.Random(seed)
    alphabet = string.digits + string.ascii_letters
    return sorted({"".join(rng.choices(alphabet, k=20)) for _ in range(count)})


def changed_documents(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """IDs whose update time differs (or that appeared or vanished)."""
    return {doc_id for doc_id in before.keys() | after.keys()
            if before.get(doc_id) != after.get(doc_id)}


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """An HTTP server of the tests' own on a free loopback port, answering in threads of
    its own until `stop_serving`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop_serving(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


class Backend:
    """The app's health endpoint: healthy, failing (503) or slow, as the test says."""

    def __init__(self) -> None:
        self.mode = "healthy"
        self.probes = 0
        self.authorization: str | None = None  # when set, a probe without it gets 401
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                backend.probes += 1
                if backend.mode == "slow":
                    time.sleep(0.4)
                if backend.authorization is not None and \
                        self.headers.get("Authorization") != backend.authorization:
                    self.send_response(401)
                    self.end_headers()
                    return
                self.send_response(503 if backend.mode == "failing" else 200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/health?token=s3cret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        stop_serving(self.server)


# A run slow enough to act on while it goes on: 40 writes/s from the start, one cursor.
SLOW_RUN = ("--batch-size", "20", "--parallel-reads", "1", "--initial-writes-per-second",
            "40", "--max-writes-per-second", "40")


def ledger_entry(db: Database, run_id: str) -> dict[str, Any]:
    """A run's ledger document, as the database holds it."""
    return dict(db.documents(DEFAULT_LEDGER_COLLECTION)[run_id])


def leases(db: Database) -> list[dict[str, Any]]:
    return [e for e in db.documents(DEFAULT_LEDGER_COLLECTION).values()
            if e.get("kind") == "lease"]


class Terminal:
    """A tool with stdin, stdout and stderr on a pseudo-terminal of 40 rows and 160
    columns (a new one has 0 columns), as in the app's console: what a person sees."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
        self.process = subprocess.Popen(argv, cwd=REPO, env=env, stdin=follower,
                                        stdout=follower, stderr=follower)
        os.close(follower)
        self.screen = b""

    def read_until(self, text: bytes) -> None:
        while text not in self.screen:
            self.screen += os.read(self.leader, 65536)

    def type(self, keys: bytes) -> None:
        os.write(self.leader, keys)

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        """Everything drawn until the tool closes the terminal; its exit code."""
        try:
            while True:
                try:
                    chunk = os.read(self.leader, 65536)
                except OSError:  # EIO: the other end closed
                    break
                if not chunk:
                    break
                self.screen += chunk
        finally:
            os.close(self.leader)
        return self.process.wait(timeout=timeout), self.screen.decode(errors="replace")
