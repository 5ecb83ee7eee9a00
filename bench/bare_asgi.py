"""The same-run HTTP reference: the least an ASGI app can do for an OFREP-shaped request.

It reads the POST body (as the OFREP handler must) and answers a fixed small JSON object of about
the size of an OFREP single-flag answer. No parsing, no auth, no evaluation: what is left is
uvicorn + uvloop + httptools, so Rampup's figure divided by this one is the share of the
server's capacity that Rampup's own code leaves.

Served by:  uvicorn bare_asgi:app --app-dir bench --loop uvloop --http httptools --workers 1
"""

from typing import Any

BODY = b'{"key":"bench-flag","value":false,"reason":"SPLIT","variant":"off","metadata":{"version":2}}'
HEADERS = [(b"content-type", b"application/json")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
