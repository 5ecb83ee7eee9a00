"""One POST with error translation, shared by the HTTP notifiers and the webhook hook."""

from typing import Any

import httpx

from rampup.errors import Unavailable

__all__ = ["post"]


def post(
    client: httpx.Client,
    url: str,
    *,
    json: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    try:
        response = client.post(url, json=json, content=content, headers=headers)
    except httpx.HTTPError as exc:
        raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
    if not response.is_success:
        # A receiver's refusal as status and reason only: its body is its own (maybe a secret), never repeated.
        raise Unavailable(f"answered {response.status_code} {response.reason_phrase}".rstrip())
