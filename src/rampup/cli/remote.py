"""The CLI's HTTP client: one place that turns server errors into one-line reasons."""

from typing import Any

import httpx

from rampup.errors import RampupError

__all__ = ["Remote", "CliError"]


class CliError(RampupError):
    code = "cli"


class Remote:
    def __init__(self, server: str, token: str | None, timeout: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.server = server.rstrip("/")
        self._client = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        try:
            response = self._client.request(method, path, json=body, params=params)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.server}: {exc}") from None
        if response.status_code >= 400:
            raise CliError(f"{response.status_code}: {_reason(response)}")
        return response.json() if response.content else None


def _reason(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return response.text.strip()[:300] or response.reason_phrase
    where = error.get("where")
    message = error.get("message", "")
    return f"{message} (at {where})" if where and where not in message else message
