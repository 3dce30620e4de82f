"""A hostile host, as raw TCP from one loopback address: connections that send half a request
and stay silent (held open: one the server closes is opened again), and requests whose head
arrives whole but whose body never does (each held in progress by the server)."""

import asyncio
import contextlib
import resource
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass

CONNECT_TIMEOUT = 5.0
POLL_SECONDS = 0.1
STOP_SECONDS = 30.0
RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset
HALF_A_REQUEST = b"GET /health HTTP/1.1\r\nHost: flood.example\r\nX-Waiting: "


def allow_descriptors(needed: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (where that is needed); the
    number of descriptors it now may hold."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return needed if soft == resource.RLIM_INFINITY else soft


def reset_on_close(writer: asyncio.StreamWriter) -> None:
    """Close with a reset: no TIME_WAIT left behind for each of thousands of connections."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
    writer.close()


class IdleFlood:
    """`count` connections from `source` to host:port, each holding half a request, kept
    open by a thread of their own (plain sockets and epoll: thousands open in a second or
    two): one the server closes is opened again at once."""

    def __init__(self, host: str, port: int, source: str, count: int) -> None:
        self.host, self.port, self.source, self.count = host, port, source, count
        self.open = 0
        self.opened = 0
        self.closed_by_server = 0
        self.failed = 0
        self._all_open = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._hold, name="idle-flood", daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def until_open(self, seconds: float) -> float:
        """Seconds until every connection was open at once (or `seconds` passed)."""
        started = time.monotonic()
        await asyncio.to_thread(self._all_open.wait, seconds)
        return time.monotonic() - started

    async def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join, STOP_SECONDS)

    def _connect(self) -> socket.socket | None:
        sock = socket.socket()
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
            sock.bind((self.source, 0))
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect((self.host, self.port))
            sock.sendall(HALF_A_REQUEST)
            sock.setblocking(False)
        except OSError:
            sock.close()
            self.failed += 1
            return None
        return sock

    def _hold(self) -> None:
        held: dict[int, socket.socket] = {}
        with select.epoll() as poller:
            try:
                while not self._stopping.is_set():
                    while len(held) < self.count and not self._stopping.is_set():
                        sock = self._connect()
                        if sock is None:
                            break  # again after the next poll
                        held[sock.fileno()] = sock
                        poller.register(sock, select.EPOLLIN | select.EPOLLRDHUP)
                        self.opened += 1
                        self.open = len(held)
                    if len(held) == self.count:
                        self._all_open.set()
                    # Readable: the server answered or closed it (it sends nothing else).
                    for fd, _ in poller.poll(POLL_SECONDS):
                        poller.unregister(fd)
                        held.pop(fd).close()
                        self.closed_by_server += 1
                    self.open = len(held)
            finally:
                for sock in held.values():
                    sock.close()
                self.open = 0


@dataclass(frozen=True)
class HeldRequests:
    """What the server did with requests sent all at once, whose bodies never come."""

    refused: list[bytes]
    """The status line and body of each one answered."""
    held: int
    """Those still unanswered (in progress, waiting for their body) when the wait ended."""


async def requests_without_bodies(
    host: str, port: int, source: str, count: int, path: str, wait: float
) -> HeldRequests:
    """`count` POSTs from `source`, each a whole head announcing a body that is never sent;
    whatever the server answers within `wait` seconds."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: flood.example\r\nContent-Type: application/json\r\n"
        "Content-Length: 64\r\n\r\n"
    ).encode()

    async def one() -> bytes | None:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
        try:
            writer.write(head)
            try:
                async with asyncio.timeout(wait):
                    return await reader.read(4096)
            except TimeoutError:
                return None
        finally:
            reset_on_close(writer)

    answers = await asyncio.gather(*(one() for _ in range(count)))
    refused = [answer for answer in answers if answer is not None]
    return HeldRequests(refused, count - len(refused))


@dataclass(frozen=True)
class Closed:
    """What the server did with one connection, after what was sent on it."""

    data: bytes
    """Everything it answered."""
    closed: bool
    """Whether it closed (or reset) the connection within the wait."""
    seconds: float

    @property
    def status(self) -> str:
        line = self.data.partition(b"\r\n")[0].decode(errors="replace").strip()
        return line or "none"


async def until_closed(host: str, port: int, data: bytes, wait: float) -> Closed:
    """Send `data` (the server may refuse it before it all arrives), then read until the server
    closes the connection, or `wait` seconds pass."""
    started = time.monotonic()
    async with asyncio.timeout(CONNECT_TIMEOUT):
        reader, writer = await asyncio.open_connection(host, port)
    received = b""
    closed = False
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(data)
            await writer.drain()
        try:
            async with asyncio.timeout(wait - (time.monotonic() - started)):
                while chunk := await reader.read(65536):
                    received += chunk
            closed = True
        except ConnectionError:
            closed = True
        except TimeoutError:
            pass
    finally:
        reset_on_close(writer)
    return Closed(received, closed, time.monotonic() - started)


def resident_kib(pid: int) -> int:
    """A process's resident memory (VmRSS), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")
