"""HTTP as an attacker writes it: a head and a body sent byte by byte as the test chooses, on one socket, and a
server's resident memory to watch while it happens."""

import select
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.waiting import PATIENCE_S

__all__ = ["RawResponse", "exchange", "resident_bytes"]


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def exchange(url: str, head: bytes, body: Iterable[bytes] = ()) -> RawResponse:
    """Sends `head`, then `body` chunk by chunk until the server answers or hangs up, and returns the answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), PATIENCE_S) as sock:
        sock.sendall(head)
        for chunk in body:
            if select.select([sock], [], [], 0)[0]:
                break  # answered (or closed) already: the rest is not wanted
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        return _read_response(sock)


def _read_response(sock: socket.socket) -> RawResponse:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = _content_length(head)
            if length is not None and len(body) >= length:
                break
    except ConnectionResetError:
        pass  # a server that hangs up on unread input resets the connection after its answer
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), f"no HTTP answer, got {data[:200]!r}"
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return RawResponse(int(lines[0].split()[1]), headers, body)


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return None


def resident_bytes(pid: int) -> int:
    """The process's resident memory now (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")
