"""Rampup's Python SDK: flags evaluated in process, kept current by the server, with request telemetry.

    from rampup.sdk import Client

    with Client("http://127.0.0.1:8400", SDK_TOKEN, ingest_token=INGEST_TOKEN, bootstrap="flags.json") as flags:
        if flags.is_enabled("workstation", user.id, {"email": user.email}):
            ...

See docs/sdk.md. `RampupProvider` and `RampupHook` need `openfeature-sdk`; import them from
`rampup.sdk.openfeature` (or from here, which imports it on first use).
"""

from typing import TYPE_CHECKING, Any

from rampup.sdk.client import Client, Evaluation, Stats
from rampup.sdk.middleware import RampupASGIMiddleware, RampupWSGIMiddleware, instrument_flask
from rampup.sdk.tracking import TrackerStats

if TYPE_CHECKING:
    from rampup.sdk.openfeature import RampupHook, RampupProvider

__all__ = [
    "Client",
    "Evaluation",
    "Stats",
    "TrackerStats",
    "RampupASGIMiddleware",
    "RampupWSGIMiddleware",
    "instrument_flask",
    "RampupProvider",
    "RampupHook",
]


def __getattr__(name: str) -> Any:
    # openfeature-sdk is optional: only those who use the provider need it installed.
    if name in ("RampupProvider", "RampupHook"):
        from rampup.sdk import openfeature

        return getattr(openfeature, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
