"""rampup serve (API, OFREP, SDK streams, and by default the worker) and rampup worker (the worker alone)."""

import gc
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rampup.core.durations import parse_duration
from rampup.defaults import DEFAULT_DATABASE_URL

if TYPE_CHECKING:
    from rampup.bootstrap import Container
    from rampup.config import Settings

__all__ = ["serve", "worker", "migrate"]

Database = Annotated[
    str,
    typer.Option(
        "--db", envvar="RAMPUP_DATABASE_URL", help="sqlite:///path.db or postgresql+psycopg://user@host/db"
    ),
]
Host = Annotated[str, typer.Option("--host")]
Tick = Annotated[
    str | None,
    typer.Option(
        "--tick",
        envvar="RAMPUP_TICK",
        help="How often the controller judges every live rollout.  [default: 10s]",
        show_default=False,
    ),
]


def serve(
    db: Database = DEFAULT_DATABASE_URL,
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8400,
    tick: Tick = None,
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker",
            help="Serve only: leave rollouts, alerts, reports and deliveries to `rampup worker`.",
        ),
    ] = False,
) -> None:
    """Run the Rampup server: API, OFREP, ingest, and (unless --no-worker) the rollout controller."""
    from rampup.http.app import create_app

    container = _start(db, host, port, tick, "serving")
    _run(create_app(container, worker=not no_worker), container.settings)


def worker(
    db: Database = DEFAULT_DATABASE_URL,
    host: Host = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option("--port", help="Where it answers /healthz, /readyz, /metrics (and the manual clock)."),
    ] = 8401,
    tick: Tick = None,
) -> None:
    """Run the worker alone: the rollout controller, alerts, reports, deliveries, compaction and retention. Any
    number may run on one database; one leads, the others stand by and take over when it stops."""
    from rampup.http.app import create_worker_app

    container = _start(db, host, port, tick, "worker")
    _run(create_worker_app(container), container.settings)


def migrate(db: Database = DEFAULT_DATABASE_URL) -> None:
    """Bring the database's schema to this version's and exit. `serve` and `worker` do it on start as well; run it
    alone first when upgrading several instances, so none of them waits on the others' migration."""
    from rampup.adapters.storage.engine import make_engine, migrate, newest_schema, schema_revision

    engine = make_engine(db)
    try:
        before = schema_revision(engine)
        if before == newest_schema():
            typer.echo(f"Schema already at {before}: nothing to do")
            return
        migrate(engine)
        typer.echo(f"Schema migrated from {before or 'an empty database'} to {schema_revision(engine)}")
    finally:
        engine.dispose()


def _start(db: str, host: str, port: int, tick: str | None, role: str) -> "Container":
    # The server's stack loads here, not at import: every other command stays quick to start.
    from rampup.bootstrap import build_container, prepare
    from rampup.config import Settings

    settings = Settings(database_url=db, host=host, port=port)
    if tick:
        settings = settings.model_copy(update={"tick_s": parse_duration(tick, "--tick").total_seconds()})
    container = build_container(settings)
    first = prepare(container)
    url = f"http://{host}:{port}"
    typer.echo(f"Rampup {role} {url}  (database {container.database})")
    environments = ", ".join(e.key for e in container.flags.environments())
    typer.echo(f"Environments: {environments}")
    if container.manual_clock is not None:
        typer.echo(
            f"Manual clock at {container.clock().isoformat()}: time moves only with POST /api/v1/clock "
            "(RAMPUP_MANUAL_CLOCK is for tests and demos)"
        )
    if first.example_flag:
        typer.echo(f"Example flag: {first.example_flag} (off everywhere)")
    if first.admin_token_revoked:
        typer.echo(
            "RAMPUP_ADMIN_TOKEN was revoked and stays revoked: set a new value to have an admin token again"
        )
    if first.admin_secret:
        typer.echo(f"Admin token (shown once, keep it): {first.admin_secret}")
        if role == "worker":  # it answers /healthz, /readyz and /metrics only: a command sent here would 404
            typer.echo("Use it with a `rampup serve` on this database: a worker serves no API")
        else:
            typer.echo(
                f"Try:  export RAMPUP_SERVER={url} RAMPUP_TOKEN={first.admin_secret}; rampup flag list"
            )
    return container


def _run(app: Any, settings: "Settings") -> None:
    import uvicorn

    from rampup.http.limits import bounded_http

    # Everything built so far lives as long as the process: keep the collector from walking it again, and let
    # it run less often, since every ingest batch makes thousands of short-lived objects.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=bounded_http(settings),
        log_level="warning",
        access_log=False,
        lifespan="on",
        # Open event streams (dashboards, SDKs) never end by themselves: give them this long, then stop.
        timeout_graceful_shutdown=3,
    )
    uvicorn.Server(config).run()
