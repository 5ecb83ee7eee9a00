"""The CLI's HTTP client: one place that turns server errors into one-line reasons."""

from typing import TYPE_CHECKING, Any

from rampup.errors import RampupError

if TYPE_CHECKING:
    import httpx

__all__ = ["Remote", "CliError"]


class CliError(RampupError):
    code = "cli"


class Remote:
    def __init__(self, server: str, token: str | None, timeout: float = 10.0) -> None:
        import httpx  # a third of a command's start-up: loaded by the commands that call a server

        if token is not None and not token.isascii():
            raise CliError("the token has a character that is not ASCII; copy it again (no '…')")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.server = server.rstrip("/")
        try:
            self._client = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)
        except (httpx.InvalidURL, ValueError) as exc:
            raise CliError(f"{server!r} is not a server URL: {exc}") from None

    def _request(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> "httpx.Response":
        import httpx

        try:
            response = self._client.request(method, path, json=body, params=params)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise CliError(f"cannot reach {self.server}: {exc}") from None
        if response.status_code >= 400:
            raise CliError(f"{response.status_code}: {_reason(response)}")
        return response

    def text(self, path: str, params: dict[str, Any] | None = None) -> str:
        """A document that is not JSON (a report in Markdown or HTML)."""
        return self._request("GET", path, params=params).text

    def call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        response = self._request(method, path, body, params)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CliError(
                f"{self.server} answered something that is not Rampup's JSON "
                f"({response.headers.get('content-type', 'no content type')}); is it a Rampup server?"
            ) from None


def _reason(response: "httpx.Response") -> str:
    try:
        error = response.json()["error"]
        where, message = error.get("where"), str(error.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        return f"{response.reason_phrase} ({kind}, not Rampup's JSON: is this a Rampup server?)"
    return f"{message} (at {where})" if where and where not in message else message
