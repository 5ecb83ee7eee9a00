"""create_app(container) → the ASGI app: OFREP in front, the FastAPI admin API behind it."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, MutableMapping
from datetime import timedelta
from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool

from rampup import __version__
from rampup.adapters.codecs.ofrep import OfrepError, encode_error
from rampup.bootstrap import Container
from rampup.core.flags import ErrorCode
from rampup.http import sdk
from rampup.http.errors import error_body, install_error_handlers
from rampup.http.ofrep import OFREP_PREFIX, OfrepApp, openapi_paths
from rampup.http.routes import (
    admin,
    clock,
    flags,
    health,
    ingest,
    metrics,
    notifications,
    reports,
    rollouts,
)
from rampup.web import routes as dashboard

__all__ = ["create_app"]

log = logging.getLogger("rampup")


async def _every(interval_s: float, job: Callable[[], object]) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await run_in_threadpool(job)
        except Exception:  # a database hiccup must not stop the loop; say what happened and try again
            log.exception("background job %s failed", getattr(job, "__name__", job))


class RefuseNul:
    """A NUL character in a path or query can be nothing but an attack or a mistake, and PostgreSQL cannot
    store one: answer 400 before any route sees it."""

    def __init__(self, app: OfrepApp) -> None:
        self._app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope["path"]
            or b"%00" in scope.get("query_string", b"")
            or b"\x00" in scope.get("query_string", b"")
        ):
            message = "a NUL character in the URL"
            body = (
                encode_error(None, OfrepError(ErrorCode.GENERAL, message))[1]
                if scope["path"].startswith(OFREP_PREFIX)
                else msgspec.json.encode(error_body("bad_request", message))
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self._app(scope, receive, send)


def create_app(c: Container) -> RefuseNul:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(c.snapshots.refresh)
        retention = timedelta(days=c.settings.retention_days)
        tasks = [
            asyncio.create_task(_every(c.settings.snapshot_poll_s, c.snapshots.refresh)),
            asyncio.create_task(_every(c.settings.outbox_poll_s, c.leader.deliver)),
            asyncio.create_task(_every(c.settings.maintenance_interval_s, lambda: c.ingest.purge(retention))),
        ]
        if c.manual_clock is None:  # on a manual clock the controller runs each time the clock is moved
            tasks.append(asyncio.create_task(_every(c.settings.tick_s, c.leader.control)))
        yield
        for task in tasks:
            task.cancel()

    api = FastAPI(
        title="Rampup",
        version=__version__,
        lifespan=lifespan,
        description="Progressive delivery: flags, staged rollouts, statistical gates, rollback.",
    )
    api.state.container = c
    install_error_handlers(api)
    for router in (
        health.router,
        flags.router,
        admin.router,
        ingest.router,
        metrics.router,
        metrics.definitions,
        rollouts.router,
        notifications.router,
        sdk.router,
        sdk.ofrep_events,
        reports.router,
        dashboard.router,
    ):
        api.include_router(router)
    api.mount("/static", dashboard.static, name="static")
    if c.manual_clock is not None:  # the route exists only on a server started with RAMPUP_MANUAL_CLOCK
        api.include_router(clock.router)

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(
                title=api.title, version=api.version, description=api.description, routes=api.routes
            )
            schema["paths"].update(openapi_paths())
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    return RefuseNul(OfrepApp(c.snapshots, api))
