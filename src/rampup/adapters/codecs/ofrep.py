"""OFREP (OpenFeature Remote Evaluation Protocol) bodies ↔ core values.

Success:  {"key", "value", "reason", "variant", "metadata"}        200
Error:    {"key", "errorCode", "errorDetails"}                     400 / 404
Bulk:     {"flags": [success-or-error, …]}                         200, ETag
"""

from collections.abc import Iterable
from typing import Any

import msgspec

from rampup.core.flags import ErrorCode, Resolution
from rampup.core.targeting import EvaluationContext

__all__ = ["OfrepError", "parse_context", "encode_single", "encode_bulk", "encode_error"]

_decoder = msgspec.json.Decoder()
_encode = msgspec.json.encode


class OfrepError(Exception):
    def __init__(self, code: ErrorCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def parse_context(body: bytes) -> EvaluationContext:
    """The request body's `context`; a missing body or context is an empty context, as the spec allows."""
    if not body.strip():
        return EvaluationContext()
    try:
        data = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise OfrepError(ErrorCode.PARSE_ERROR, f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise OfrepError(ErrorCode.PARSE_ERROR, "request body must be a JSON object")
    context = data.get("context")
    if context is None:
        return EvaluationContext()
    if not isinstance(context, dict):
        raise OfrepError(ErrorCode.INVALID_CONTEXT, "'context' must be an object")
    targeting_key = context.get("targetingKey")
    if targeting_key is not None and not isinstance(targeting_key, str):
        raise OfrepError(ErrorCode.INVALID_CONTEXT, "'context.targetingKey' must be a string")
    return EvaluationContext(targeting_key, context)


def _success(res: Resolution) -> dict[str, Any]:
    return {
        "key": res.flag_key,
        "value": res.value,
        "reason": res.reason.value,
        "variant": res.variant,
        "metadata": {**res.metadata, "version": res.version},
    }


def _error(key: str | None, code: ErrorCode, details: str) -> dict[str, Any]:
    body: dict[str, Any] = {"errorCode": code.value, "errorDetails": details}
    if key is not None:
        body = {"key": key, **body}
    return body


def encode_error(key: str | None, error: OfrepError) -> tuple[int, bytes]:
    status = 404 if error.code is ErrorCode.FLAG_NOT_FOUND else 400
    return status, _encode(_error(key, error.code, error.details))


def encode_single(res: Resolution) -> tuple[int, bytes]:
    if res.error_code is not None:
        return encode_error(
            res.flag_key, OfrepError(res.error_code, res.error_message or res.error_code.value)
        )
    return 200, _encode(_success(res))


def encode_bulk(results: Iterable[Resolution], event_stream: str | None = None) -> bytes:
    """The bulk answer; `event_stream` is the URL of the change stream clients may follow (OFREP eventStreams)."""
    body: dict[str, Any] = {
        "flags": [
            _success(r) if r.error_code is None else _error(r.flag_key, r.error_code, r.error_message or "")
            for r in results
        ]
    }
    if event_stream:
        body["eventStreams"] = [{"type": "sse", "url": event_stream, "inactivityDelaySec": 120}]
    return _encode(body)
