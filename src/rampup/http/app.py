"""create_app(container) → the ASGI app: OFREP in front, the FastAPI admin API behind it."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool

from rampup import __version__
from rampup.adapters.codecs.ofrep import OfrepError, encode_error
from rampup.bootstrap import Container, instance_jobs, leader_jobs
from rampup.core.flags import ErrorCode
from rampup.http import sdk, server_metrics
from rampup.http.cors import OfrepCors
from rampup.http.errors import error_body, install_error_handlers
from rampup.http.limits import BodyLimit
from rampup.http.ofrep import OFREP_PREFIX, OfrepApp
from rampup.http.ofrep_openapi import openapi_paths
from rampup.http.routes import (
    admin,
    clock,
    feedback,
    flags,
    health,
    ingest,
    lifecycle,
    metrics,
    notifications,
    reports,
    rollouts,
    scheduled_changes,
    segments,
)
from rampup.http.server_metrics import RequestTimer
from rampup.services.worker import Worker
from rampup.web import routes as dashboard

__all__ = ["create_app", "create_worker_app"]


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


def _background(c: Container, *, leads: bool) -> Worker:
    """The process's own jobs, plus the leader's when it runs a worker."""
    return Worker(instance_jobs(c) + (leader_jobs(c) if leads else []), observers=[c.meters.job_ran])


def _fastapi(c: Container, *, leads: bool, role: str) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.changes = sdk.Changes(asyncio.get_running_loop())
        unwatch = c.snapshots.watch(app.state.changes.notify)
        await run_in_threadpool(c.snapshots.refresh)
        background = _background(c, leads=leads)
        background.start()
        if c.listener is not None:
            c.listener.start()
        yield
        if c.listener is not None:
            await run_in_threadpool(c.listener.stop)
        await run_in_threadpool(background.stop)
        if leads and not background.running:  # a job still running might act again: let its lease run out
            await run_in_threadpool(c.leader.step_down)
        unwatch()
        await run_in_threadpool(c.usage.flush)  # a clean shutdown loses no count

    api = FastAPI(
        title="Rampup",
        version=__version__,
        lifespan=lifespan,
        description="Progressive delivery: flags, staged rollouts, statistical gates, rollback.",
    )
    api.state.container = c
    # Whether this process runs the leader's jobs (and so whether a clock move runs the controller).
    api.state.leads = leads
    install_error_handlers(api)
    if c.manual_clock is not None:  # the route exists only on a process started with RAMPUP_MANUAL_CLOCK
        api.include_router(clock.router)
    api.include_router(server_metrics.router)
    c.meters.started(role)
    c.meters.watch(c.snapshots, c.leader if leads else None, c.outbox if leads else None)
    return api


def create_worker_app(c: Container) -> BodyLimit:
    """`rampup worker`: the leader's jobs, and on its port only health, metrics (and the clock, on a manual
    clock)."""
    api = _fastapi(c, leads=True, role="worker")
    api.include_router(health.router)
    return BodyLimit(RequestTimer(api, c.meters), c.settings)


def create_app(c: Container, *, worker: bool = True) -> BodyLimit:
    """`rampup serve`: the API, OFREP and SDK endpoints, and (unless `worker` is False) the leader's jobs."""
    api = _fastapi(c, leads=worker, role="serve+worker" if worker else "serve")
    for router in (
        health.router,
        flags.router,
        lifecycle.router,
        admin.router,
        ingest.router,
        metrics.router,
        metrics.definitions,
        feedback.router,
        rollouts.router,
        segments.router,
        notifications.router,
        sdk.router,
        sdk.ofrep_events,
        reports.router,
        scheduled_changes.router,
        dashboard.router,
    ):
        api.include_router(router)
    api.mount("/static", dashboard.static, name="static")

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(
                title=api.title, version=api.version, description=api.description, routes=api.routes
            )
            schema["paths"].update(openapi_paths())
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    evaluations = c.meters.evaluations
    ofrep = OfrepApp(
        c.snapshots, c.usage, api, lambda env, n: evaluations.labels(env).inc(n), c.settings.public_url
    )
    timed = RequestTimer(RefuseNul(ofrep), c.meters)
    return BodyLimit(OfrepCors(timed, c.settings.cors_origins), c.settings)
