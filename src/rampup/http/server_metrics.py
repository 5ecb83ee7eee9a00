"""GET /metrics (the server's own metrics, Prometheus text format) and the timing of every request.

Scraping takes a token of the `read` scope (Prometheus: `authorization: {credentials_file: …}`): the figures
name environments and show traffic, which is not for anyone who can reach the port.
"""

import time
from collections.abc import MutableMapping
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from rampup.adapters.prometheus import CONTENT_TYPE, ServerMetrics
from rampup.http.deps import ContainerDep, Reader
from rampup.http.limits import ASGIApp
from rampup.http.ofrep import OFREP_PREFIX

__all__ = ["router", "RequestTimer"]

router = APIRouter(tags=["health"])
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
def metrics(c: ContainerDep, _: Reader) -> Response:
    """This process's metrics in the Prometheus text format (a `read` token)."""
    return Response(c.meters.render(), media_type=CONTENT_TYPE)


class RequestTimer:
    """Times each HTTP request to its first byte, labelled with the route's template (never the path as sent,
    which would make a series per flag key, per id, or per probe of an attacker)."""

    def __init__(self, app: ASGIApp, meters: ServerMetrics) -> None:
        self._app = app
        self._meters = meters

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                method = scope["method"] if scope["method"] in METHODS else "other"
                self._meters.requests.labels(method, _route(scope), str(message["status"])).observe(
                    time.perf_counter() - started
                )
            await send(message)

        await self._app(scope, receive, timed)


def _route(scope: MutableMapping[str, Any]) -> str:
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", "unmatched"))
    path: str = scope.get("path", "")
    if path.startswith(OFREP_PREFIX):
        return OFREP_PREFIX + ("/{key}" if path.rstrip("/") != OFREP_PREFIX else "")
    return "unmatched"
