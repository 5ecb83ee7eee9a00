"""Who is looking: the session cookie, the CSRF token of every changing form, and the scope checks.

The session lives in the database (any instance honours it); the cookie is HttpOnly, SameSite=Strict, and
Secure when the request came over TLS. Forms that change something carry the session's CSRF token and are
also refused when the browser says they came from another site.
"""

import hmac
import secrets
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rampup.core.sessions import Session
from rampup.core.tokens import Scope
from rampup.errors import BadRequest, Forbidden, TooLarge, Unauthorized
from rampup.http.deps import container

__all__ = [
    "SESSION_COOKIE",
    "SIGN_IN_COOKIE",
    "MAX_FORM",
    "NotSignedIn",
    "viewer",
    "Viewer",
    "form",
    "Form",
    "check_csrf",
    "set_cookie",
    "sign_in_nonce",
]

SESSION_COOKIE = "rampup_session"
SIGN_IN_COOKIE = "rampup_sign_in"  # pairs the sign-in form with this browser (login CSRF)
MAX_FORM = 64 * 1024


class NotSignedIn(Unauthorized):
    """A page asked for without a live session: the browser is sent to the sign-in page."""


async def viewer(request: Request) -> Session:
    secret = request.cookies.get(SESSION_COOKIE)
    session = await run_in_threadpool(container(request).sessions.session, secret) if secret else None
    if session is None:
        raise NotSignedIn("sign in first")
    return session


Viewer = Annotated[Session, Depends(viewer)]


async def form(request: Request) -> dict[str, str]:
    """An urlencoded form body, read up to a limit; repeated fields keep their last value."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise BadRequest("send the form as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise TooLarge(f"form over {MAX_FORM} bytes")
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=200))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"unreadable form: {exc}") from None


Form = Annotated[dict[str, str], Depends(form)]


def _same_site(request: Request) -> bool:
    """The browser's own word on where the request comes from, when it gives one."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        return origin.split("://", 1)[-1] == request.headers.get("host")
    return True


def check_csrf(request: Request, session: Session, fields: Mapping[str, str], scope: Scope) -> None:
    """Refuse a change without this session's CSRF token, from another site, or beyond the token's scope."""
    sent = fields.get("csrf", "")
    if not _same_site(request) or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise Forbidden("this form is stale or came from elsewhere (CSRF check failed): reload the page")
    if not session.can(scope):
        raise Forbidden(
            f"signed in with a {session.token.scope.value} token, which cannot do this; "
            f"it needs the {scope.value} scope"
        )


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def sign_in_nonce() -> str:
    return secrets.token_urlsafe(24)
