"""Start and stop the real Firestore emulator of the Google Cloud SDK.

Used by the test suite, `make demo`, `make bench` and a task's own tests (backfill.testing);
never by the production tools.
The emulator script starts a `java` child, so it runs in its own process group and the
whole group is stopped, or the database would outlive its caller.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

EMULATOR_SCRIPT = Path(
    "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator"
)
READY_LINE = "Dev App Server is now running"
INSTALL_HINT = (
    "The Firestore emulator could not be started. It comes with the Google Cloud SDK "
    "and needs Java 17+: install the SDK, then `gcloud components install "
    "cloud-firestore-emulator` (or Debian's google-cloud-cli-firestore-emulator package)."
)


class EmulatorError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(port: int) -> list[str]:
    if EMULATOR_SCRIPT.exists():
        return [str(EMULATOR_SCRIPT), "start", "--host=127.0.0.1", f"--port={port}"]
    gcloud = shutil.which("gcloud")
    if gcloud:
        return [gcloud, "emulators", "firestore", "start", f"--host-port=127.0.0.1:{port}"]
    raise EmulatorError(INSTALL_HINT + " (neither the emulator script nor gcloud was found)")


class Emulator:
    """One running emulator. Use as a context manager, or call start() and stop()."""

    def __init__(self, port: int | None = None, env: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.env = env  # None: this process's environment
        self.host = f"127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._guard: subprocess.Popen[bytes] | None = None
        self._log = Path(os.devnull)  # its output, once started

    @classmethod
    def running_at(cls, host: str) -> Emulator:
        """An emulator another process started and will stop (a test session's workers
        share the one their controller started): stop() leaves it running."""
        return cls(port=int(host.rsplit(":", 1)[1]))

    def start(self, timeout: float = 90.0) -> Emulator:
        self._log = Path(tempfile.mkstemp(prefix="firestore-emulator-", suffix=".log")[1])
        with self._log.open("wb") as log:
            try:
                self._process = subprocess.Popen(
                    _command(self.port),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self.env,
                    start_new_session=True,
                )
            except OSError as error:
                raise EmulatorError(f"{INSTALL_HINT} ({error})") from error
        self._guard = _guard(self._process.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmulatorError(f"{INSTALL_HINT}\nIts output:\n{self.output()}")
            if READY_LINE in self.output():
                return self
            time.sleep(0.1)
        self.stop()
        raise EmulatorError(f"{INSTALL_HINT} (not ready after {timeout:.0f}s)\n{self.output()}")

    def cpu_seconds(self) -> float:
        """CPU time used so far by the emulator's whole process group (the java child)."""
        if self._process is None:
            return 0.0
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self._process.pid:  # field 5, pgrp, after pid and comm
                total += int(fields[11]) + int(fields[12])  # utime + stime, in ticks
        return total / os.sysconf("SC_CLK_TCK")

    def reset(self, project: str) -> None:
        """Delete every document of a project (the emulator's own endpoint), so that a
        long session does not grow the emulator's heap."""
        url = (f"http://{self.host}/emulator/v1/projects/{project}/databases/(default)"
               "/documents")
        request = urllib.request.Request(url, method="DELETE")
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback
        with direct.open(request, timeout=30) as answer:
            answer.read()

    def output(self) -> str:
        return self._log.read_text(errors="replace")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10.0
        while _group_alive(process) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(process):
            _signal_group(process.pid, signal.SIGKILL)
        process.wait()
        if self._guard is not None:
            self._guard.communicate()  # its stdin closed: it exits
            self._guard = None
        self._log.unlink(missing_ok=True)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# The guard: stops the emulator's process group once its owner is gone, however it went
# (kill -9 included): the owner holds the write end of the guard's stdin, and the system
# closes it when the owner exits.
_GUARD = """
import os, signal, sys, time
sys.stdin.buffer.read()
group = int(sys.argv[1])
for sig in (signal.SIGTERM, signal.SIGKILL):
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        break
    time.sleep(5)
"""


def _guard(pgid: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _GUARD, str(pgid)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _group_alive(process: subprocess.Popen[bytes]) -> bool:
    process.poll()  # reap the script itself, so that a zombie does not count as alive
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True
