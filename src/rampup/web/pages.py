"""Rendering: the Jinja2 environment, its filters, and the headers every dashboard page carries."""

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from rampup import __version__
from rampup.adapters.reports.labels import value_text
from rampup.core.durations import format_duration
from rampup.core.sessions import Session
from rampup.core.tokens import Scope

__all__ = ["render", "PAGE_HEADERS"]

TEMPLATES = Path(__file__).with_name("templates")

# Everything comes from this server: no inline script or style, no other origin, no framing by others.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _when(at: datetime | str | None) -> Markup:
    """A time in UTC, which the page's script shows in the browser's zone, keeping UTC on hover."""
    if at is None:
        return Markup('<span class="none">—</span>')
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    utc = f"{at:%Y-%m-%d %H:%M:%S} UTC"
    return Markup(f'<time datetime="{escape(at.isoformat())}" title="{escape(utc)}">{escape(utc)}</time>')


def _seconds(value: float | None) -> str:
    return "—" if value is None else format_duration(timedelta(seconds=value), "short")


_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html.j2"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(
    when=_when,
    seconds=_seconds,
    value=value_text,
    tojson_pretty=lambda v: json.dumps(v, indent=2, default=str),
    words=lambda s: str(s).replace("_", " "),
    num=lambda x: f"{x:g}",
)
_env.globals.update(version=__version__)


def render(
    request: Request, template: str, session: Session | None, values: dict[str, Any], status: int = 200
) -> HTMLResponse:
    context = {
        "path": request.url.path,
        "session": session,
        "csrf": session.csrf if session else "",
        "can_write": bool(session and session.can(Scope.WRITE)),
        "can_admin": bool(session and session.can(Scope.ADMIN)),
        "flash": None,
        **values,
    }
    html = _env.get_template(template).render(context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)
