"""Request bodies in gzip, deflate or br, inflated with a hard limit (no decompression bombs)."""

import zlib

import brotli

from rampup.errors import BadRequest, InvalidInput, TooLarge

__all__ = ["inflate"]


def inflate(body: bytes, encoding: str | None, limit: int) -> bytes:
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        data = body
    elif encoding in ("gzip", "x-gzip", "deflate"):
        # wbits 47 reads gzip and zlib headers alike; some clients send raw deflate, tried next.
        data = _zlib(body, 47, limit, encoding)
    elif encoding == "br":
        data = _brotli(body, limit)
    else:
        raise InvalidInput(
            f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or br", where="Content-Encoding"
        )
    if len(data) > limit:
        raise TooLarge(f"body over {limit} bytes")
    return data


def _zlib(body: bytes, wbits: int, limit: int, encoding: str) -> bytes:
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
        if not inflater.eof and len(data) <= limit:
            raise BadRequest(f"the {encoding} body is truncated", where="body")
    except zlib.error as exc:
        if wbits == 47 and encoding == "deflate":
            return _zlib(body, -15, limit, encoding)
        raise BadRequest(f"the {encoding} body is corrupt: {exc}", where="body") from None
    return data


def _brotli(body: bytes, limit: int) -> bytes:
    inflater = brotli.Decompressor()
    try:
        data: bytes = inflater.process(body, output_buffer_limit=limit + 1)
    except brotli.error as exc:
        raise BadRequest(f"the br body is corrupt: {exc}", where="body") from None
    if len(data) <= limit and not inflater.is_finished():
        raise BadRequest("the br body is truncated", where="body")
    return data
