"""Secrets inside URLs, masked for every view: a Slack or webhook URL is itself a credential (whoever has it can
post), so listings, audit entries, deliveries and plans show `https://hooks.slack.com/services/T0…/***`.

What stays: the scheme, the host and port, and the leading path segments that name a route (`services`,
`api`, `v2`), enough to tell channels apart. What goes: user info, the query, the fragment, and from the first
segment that looks like a token on, the rest of the path (its first two characters kept when it is long).
"""

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["mask_url", "mask_urls"]

HIDDEN = "***"
_ROUTE = re.compile(r"[a-z][a-z_-]{0,19}|v\d{1,2}")  # lower-case words: routes, not credentials
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,:;)\]]")


def mask_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return HIDDEN
    if not parts.scheme or not host:
        return HIDDEN
    netloc = ("***@" if "@" in parts.netloc else "") + (f"[{host}]" if ":" in host else host)
    netloc += f":{port}" if port is not None else ""
    return f"{parts.scheme}://{netloc}{_masked_path(parts.path)}{'?***' if parts.query else ''}"


def _masked_path(path: str) -> str:
    segments = path.split("/")[1:]
    kept: list[str] = []
    for i, segment in enumerate(segments):
        if _ROUTE.fullmatch(segment) or not segment:
            kept.append(segment)
            continue
        kept.append(f"{segment[:2]}…" if len(segment) >= 8 else HIDDEN)
        if any(segments[i + 1 :]):
            kept.append(HIDDEN)
        break
    return "/" + "/".join(kept) if segments else ""


def mask_urls(value: Any) -> Any:
    """`value` (text, or JSON-like data) with every URL in it masked."""
    if isinstance(value, str):
        return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), value)
    if isinstance(value, Mapping):
        return {k: mask_urls(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_urls(v) for v in value]
    return value
