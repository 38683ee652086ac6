"""A small TCP proxy on loopback, to put distance and faults between a client and the emulator.

- `delay`: seconds added to each direction (a 40 ms round trip is delay=0.02). It delays
  every chunk by the same amount without limiting bandwidth, as a long link does.
- `drop_connections()`: closes every open connection, as a dropped network does.
- `go_down()` / `go_up()`: while down, existing connections are dropped and new ones are
  closed at once: from the client's side, the database is unreachable. The data behind
  it stays, so a run can be resumed once it is up again.
- `stall(seconds)`: connections stop passing data for a while, then are dropped.

Used by the fault tests and `make bench`; it only ever listens on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import math
import queue
import socket
import threading
import time

_CHUNK = 65536


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, proxy: TcpProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.sockets = (client, upstream)
        self.closed = threading.Event()
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        delayed: queue.Queue[tuple[float, bytes] | None] = queue.Queue()
        if self.proxy.delay > 0:
            threading.Thread(target=self._deliver, args=(delayed, sink), daemon=True).start()
        try:
            while not self.closed.is_set():
                data = source.recv(_CHUNK)
                if not data:
                    break
                if source is self.sockets[1]:
                    self.proxy.count_received(len(data))
                if self.proxy.delay > 0:
                    delayed.put((time.monotonic() + self.proxy.delay, data))
                else:
                    self._send(sink, data)
        except OSError:
            pass
        delayed.put(None)
        if self.proxy.delay <= 0:
            self.close()

    def _deliver(self, delayed: queue.Queue[tuple[float, bytes] | None],
                 sink: socket.socket) -> None:
        while (entry := delayed.get()) is not None:
            due, data = entry
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                self._send(sink, data)
            except OSError:
                break
        self.close()

    def _send(self, sink: socket.socket, data: bytes) -> None:
        while self.proxy.stalled_until > time.monotonic() and not self.closed.is_set():
            time.sleep(0.01)
        if not self.closed.is_set():
            sink.sendall(data)

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.proxy.forget(self)


class TcpProxy:
    def __init__(self, upstream: str, delay: float = 0.0) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.delay = delay
        self.stalled_until = 0.0
        self.bytes_received = 0  # from the upstream database, towards the clients
        self._down = threading.Event()
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.host = f"127.0.0.1:{self.port}"
        self._running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._down.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._links.add(_Link(self, client, upstream))

    def forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    def count_received(self, size: int) -> None:
        with self._lock:
            self.bytes_received += size

    def drop_connections(self) -> int:
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()
        return len(links)

    def go_down(self) -> None:
        self._down.set()
        self.drop_connections()

    def go_up(self) -> None:
        self._down.clear()
        self.stalled_until = 0.0

    def black_hole(self) -> None:
        """Packets vanish: connections are taken, nothing is ever answered or refused."""
        self.stalled_until = math.inf

    def stall(self, seconds: float) -> None:
        """Hold all traffic for `seconds`, then drop the connections that were held."""
        self.stalled_until = time.monotonic() + seconds
        time.sleep(seconds)
        self.drop_connections()

    def close(self) -> None:
        self._running = False
        self._listener.close()
        self.drop_connections()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
