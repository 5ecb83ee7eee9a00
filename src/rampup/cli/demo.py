"""rampup demo: a throwaway server with two rollouts in accelerated time, synthetic users, one regression."""

import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["demo"]

SIGN_OFF_AFTER_S = 15.0  # the release manager signs the first stage off a moment after the start


def demo(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8400,
    rate: Annotated[float, typer.Option("--rate", help="Synthetic requests per second.")] = 1000.0,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the database when it stops.")] = False,
) -> None:
    """Start a throwaway server (SQLite in a temporary folder) with the example plan in accelerated time
    (stages of about a minute), synthetic traffic for both variants, and a second flag that regresses at 25%."""
    import httpx
    import uvicorn

    from rampup.bootstrap import build_container, prepare
    from rampup.config import Settings
    from rampup.demo import REGRESSING_FLAG, DemoTraffic, set_up
    from rampup.http.app import create_app
    from rampup.services.tokens import new_secret

    folder = Path(tempfile.mkdtemp(prefix="rampup-demo-"))
    token = new_secret()
    settings = Settings(
        database_url=f"sqlite:///{folder / 'demo.db'}",
        admin_token=token,
        host=host,
        port=port,
        tick_s=1.0,
        outbox_poll_s=1.0,
    )
    container = build_container(settings)
    prepare(container)
    url = f"http://{host}:{port}"
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(container),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=3,
        )
    )
    traffic: list[DemoTraffic] = []

    def scenario() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.05)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as api:
            tokens, rollouts = set_up(api)
            generator = DemoTraffic(
                url,
                tokens,
                rollouts[REGRESSING_FLAG],
                token,
                rate=rate,
                on_error=lambda m: typer.echo(m, err=True),
            )
            generator.start()
            traffic.append(generator)
            typer.echo(
                f"\nRampup demo at {url}\n"
                f"  Sign in with this admin token:  {token}\n\n"
                f"  Rollout {rollouts['workstation']}: workstation, the example plan with stages of a minute. It waits for\n"
                "    two sign-offs (given in a moment), then advances as its gates pass; the last stage waits\n"
                f"    for your approval: press Approve on {url}/rollouts/{rollouts['workstation']}\n"
                f"  Rollout {rollouts[REGRESSING_FLAG]}: {REGRESSING_FLAG}, whose new checkout fails 8% of its requests from 25%:\n"
                f"    watch the controller roll it back by itself on {url}/rollouts/{rollouts[REGRESSING_FLAG]}\n"
                f"  Synthetic users: {rate:g} requests a second through the ingest API.\n"
                f"  Database: {folder / 'demo.db'} ({'kept' if keep else 'deleted'} when you stop with Ctrl-C)\n"
            )
            signed_off = time.monotonic() + SIGN_OFF_AFTER_S
            while not server.should_exit and time.monotonic() < signed_off:
                time.sleep(0.1)
            if not server.should_exit:
                for prerequisite in ("Rollback plan ready", "Support team briefed"):
                    api.post(
                        f"/api/v1/rollouts/{rollouts['workstation']}/signoff",
                        json={"prerequisite": prerequisite, "by": "dana (release manager)"},
                    )
            while not server.should_exit:  # the users leave before the server does
                time.sleep(0.1)
            generator.stop()

    thread = threading.Thread(target=scenario, name="rampup-demo", daemon=True)
    thread.start()
    # uvicorn stops on SIGTERM and then raises it again for the handler in place before: make that an exit
    # that runs the clean-up below, as Ctrl-C (SIGINT) does.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    try:
        server.run()
    finally:
        for generator in traffic:
            generator.stop()
        container.close()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
