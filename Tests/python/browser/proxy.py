"""A loopback TCP proxy the browser tests put between Chromium and `medview serve`, to break the
network on purpose.

Why not only the Chrome DevTools Protocol: in Debian's Chromium (checked with 156),
`Network.emulateNetworkConditions(offline)` fails *new* requests and flips `navigator.onLine`,
but an already open WebSocket keeps working; and `Network.setBlockedURLs` does not apply to
WebSocket handshakes at all. So the tests load the page through this proxy (same origin for
the page) and use it to:

- `cut()`: reset every open connection (what a phone sees when the network drops);
- `offline = True`: reset new connections as they arrive (no network) until set back;
- `block_websockets = True`: answer every WebSocket upgrade with 403, as a proxy or firewall
  that does not allow WebSockets would, while plain HTTP (and so SSE) still works.

Chrome opens WebSockets on their own connections (never on a pooled HTTP keep-alive one), so
looking at the first request of each connection is enough to spot an upgrade.
"""

from __future__ import annotations

import socket
import struct
import threading

_HEAD_LIMIT = 65536


def _reset(sock: socket.socket) -> None:
    """Kills a connection: wakes any thread blocked reading it, then closes with a TCP reset."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class FlakyProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.offline = False
        self.block_websockets = False
        self.websocket_upgrades_seen = 0
        self.websocket_upgrades_blocked = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, name="flaky-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ control

    def cut(self) -> int:
        """Resets every open connection; returns how many sockets were cut."""
        with self._lock:
            victims = list(self._open)
            self._open.clear()
        for sock in victims:
            _reset(sock)
        return len(victims)

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.close()
        except OSError:
            pass
        self.cut()

    # ------------------------------------------------------------------ plumbing

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.update(socks)

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            for sock in socks:
                self._open.discard(sock)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.offline:
                _reset(client)
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        head = b""
        try:
            client.settimeout(10)
            while b"\r\n\r\n" not in head and len(head) < _HEAD_LIMIT:
                chunk = client.recv(65536)
                if not chunk:
                    break
                head += chunk
            client.settimeout(None)
        except OSError:
            self._forget(client)
            _reset(client)
            return
        if not head:
            self._forget(client)
            _reset(client)
            return
        headers = head.split(b"\r\n\r\n", 1)[0].lower()
        if b"\r\nupgrade: websocket" in headers:
            self.websocket_upgrades_seen += 1
            if self.block_websockets:
                self.websocket_upgrades_blocked += 1
                try:
                    client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass
                self._forget(client)
                _reset(client)
                return
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
            upstream.settimeout(None)
            upstream.sendall(head)
        except OSError:
            self._forget(client)
            _reset(client)
            return
        self._track(upstream)
        done = threading.Semaphore(0)
        threading.Thread(target=self._pump, args=(upstream, client, done), daemon=True).start()
        self._pump(client, upstream, done)
        done.acquire()  # both directions finished
        done.acquire()
        self._forget(client, upstream)
        for sock in (client, upstream):
            try:
                sock.close()
            except OSError:
                pass

    def _pump(self, source: socket.socket, sink: socket.socket, done: threading.Semaphore) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
            # A clean end of one direction: pass the half-close on, keep the other direction.
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            # Cut (or reset by a peer): make sure the other side sees a reset too.
            _reset(sink)
            _reset(source)
        finally:
            done.release()
