"""rampup serve: API, OFREP and the snapshot poller in one process."""

import gc
from typing import Annotated

import typer

from rampup.config import DEFAULT_DATABASE_URL, Settings
from rampup.core.durations import parse_duration

__all__ = ["serve"]


def serve(
    db: Annotated[
        str,
        typer.Option(
            "--db",
            envvar="RAMPUP_DATABASE_URL",
            help="sqlite:///path.db or postgresql+psycopg://user@host/db",
        ),
    ] = DEFAULT_DATABASE_URL,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8400,
    tick: Annotated[
        str | None,
        typer.Option(
            "--tick",
            envvar="RAMPUP_TICK",
            help="How often the controller judges every live rollout.  [default: 10s]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the Rampup server: API, OFREP, ingest and the rollout controller."""
    # The server's stack loads here, not at import: every other command stays quick to start.
    import uvicorn

    from rampup.bootstrap import build_container, prepare
    from rampup.http.app import create_app

    settings = Settings(database_url=db, host=host, port=port)
    if tick:
        settings = settings.model_copy(update={"tick_s": parse_duration(tick, "--tick").total_seconds()})
    container = build_container(settings)
    first = prepare(container)
    url = f"http://{host}:{port}"
    typer.echo(f"Rampup serving {url}  (database {container.store.engine.url.render_as_string()})")
    environments = ", ".join(e.key for e in container.flags.environments())
    typer.echo(f"Environments: {environments}")
    if container.manual_clock is not None:
        typer.echo(
            f"Manual clock at {container.clock().isoformat()}: time moves only with POST /api/v1/clock "
            "(RAMPUP_MANUAL_CLOCK is for tests and demos)"
        )
    if first.example_flag:
        typer.echo(f"Example flag: {first.example_flag} (off everywhere)")
    if first.admin_secret:
        typer.echo(f"Admin token (shown once, keep it): {first.admin_secret}")
        typer.echo(f"Try:  export RAMPUP_SERVER={url} RAMPUP_TOKEN={first.admin_secret}; rampup flag list")
    # Everything built so far lives as long as the process: keep the collector from walking it again, and let
    # it run less often, since every ingest batch makes thousands of short-lived objects.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    config = uvicorn.Config(
        create_app(container),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
        # Open event streams (dashboards, SDKs) never end by themselves: give them this long, then stop.
        timeout_graceful_shutdown=3,
    )
    uvicorn.Server(config).run()
