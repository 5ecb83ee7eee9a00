"""The dashboard: server-rendered pages (Jinja2) over the same services as the API, a small script of our own
for live updates, and a session per browser signed in with a token."""

from rampup.web.routes import router, static

__all__ = ["router", "static"]
