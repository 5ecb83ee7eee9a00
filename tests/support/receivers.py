"""Receivers on loopback for what Rampup sends: webhooks (and Slack, PagerDuty, which are HTTP POSTs too) and
e-mail over SMTP (aiosmtpd).

Delivery is at least once: a receiver may see a notification twice, and tells duplicates apart by its `id`.
"""

import contextlib
import email
import email.policy
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.ports import free_port

__all__ = ["MAX_SKEW_S", "Mailbox", "Post", "Receiver", "sign", "signature_problem", "smtp_server"]

MAX_SKEW_S = 300  # receivers refuse signatures older (or newer) than five minutes: no replays


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Rampup-Signature header a webhook receiver expects: HMAC-SHA256(secret, "<t>.<raw body>")."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def signature_problem(secret: str, header: str | None, body: bytes, now: float | None = None) -> str | None:
    """Why this X-Rampup-Signature is not acceptable, or None when it is."""
    if not header:
        return "no X-Rampup-Signature"
    try:
        parts = dict(p.strip().split("=", 1) for p in header.split(","))
        timestamp, given = int(parts["t"]), parts["v1"]
    except (KeyError, ValueError):
        return f"malformed X-Rampup-Signature {header!r}"
    if abs((time.time() if now is None else now) - timestamp) > MAX_SKEW_S:
        return f"timestamp {timestamp} is more than {MAX_SKEW_S}s off"
    if not hmac.compare_digest(sign(secret, timestamp, body), f"t={timestamp},v1={given}"):
        return "the HMAC does not match"
    return None


@dataclass
class Post:
    path: str
    headers: dict[str, str]  # lower-cased names
    raw: bytes
    body: Any
    status: int
    problem: str | None  # a signature problem, when the receiver checks signatures


class Receiver:
    """An HTTP receiver on loopback: keeps every POST (answered or refused) in arrival order.

    With a secret it checks the signature of every POST (401 when wrong). It answers 503 to the first
    `refuse_first` correctly signed POSTs, and to every POST while `refusing` is set (with `refusal` as the
    body); 200 otherwise. Use it as a context manager, or call `close()`."""

    def __init__(self, secret: str | None = None, refuse_first: int = 0, refusal: bytes = b"no") -> None:
        self.secret = secret
        self.refuse_first = refuse_first
        self.refusing = False
        self.posts: list[Post] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._answer(self.path, headers, raw)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                answer = b"ok" if status == 200 else refusal
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _answer(self, path: str, headers: dict[str, str], raw: bytes) -> int:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        problem = (
            signature_problem(self.secret, headers.get("x-rampup-signature"), raw)
            if self.secret is not None
            else None
        )
        with self._lock:
            if problem is not None:
                status = 401
            elif self.refusing:
                status = 503
            else:
                signed_ok = sum(1 for p in self.posts if p.problem is None)
                status = 503 if signed_ok < self.refuse_first else 200
            self.posts.append(Post(path, headers, raw, body, status, problem))
        return status

    def url(self, path: str = "/hook") -> str:
        return f"{self.base}{path}"

    def snapshot(self, path: str | None = None) -> list[Post]:
        with self._lock:
            return [p for p in self.posts if path is None or p.path == path]

    def accepted(self, path: str | None = None) -> list[Post]:
        return [p for p in self.snapshot(path) if p.status == 200]

    def refused(self, path: str | None = None) -> list[Post]:
        return [p for p in self.snapshot(path) if p.status != 200]

    def bodies(self, path: str | None = None) -> list[Any]:
        """The JSON bodies of the POSTs answered 200, in arrival order."""
        return [p.body for p in self.accepted(path)]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def __enter__(self) -> "Receiver":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class Mailbox:
    """aiosmtpd handler: every message that arrives, with its envelope recipients."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's naming
        content = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def snapshot(self) -> list[tuple[list[str], EmailMessage]]:
        with self._lock:
            return list(self.messages)

    def emails(self) -> list[EmailMessage]:
        return [message for _, message in self.snapshot()]


@contextlib.contextmanager
def smtp_server(mailbox: Mailbox | None = None, **options: Any) -> Iterator[tuple[Mailbox, int]]:
    """An SMTP server on a free loopback port, delivering into `mailbox` (a new one by default). `options` go
    to aiosmtpd's Controller (tls_context, require_starttls, authenticator, …)."""
    mailbox = mailbox or Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()
