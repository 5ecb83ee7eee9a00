"""OFREP's routes as /openapi.json describes them: they are served above FastAPI (`http/ofrep.py`), so FastAPI
cannot describe them, and the schema (and the fuzzing against it) would miss them."""

import copy
from typing import Any

from rampup.core.flags import Reason
from rampup.http.ofrep import OFREP_PREFIX

__all__ = ["openapi_paths"]


_SUCCESS = {
    "type": "object",
    "required": ["key", "reason", "variant", "metadata"],
    "properties": {
        "key": {"type": "string"},
        "value": {},
        "reason": {"type": "string", "enum": [r.value for r in Reason if r is not Reason.ERROR]},
        "variant": {"type": "string"},
        "metadata": {"type": "object"},
    },
}
_ERROR = {
    "type": "object",
    "required": ["errorCode", "errorDetails"],
    "properties": {
        "key": {"type": "string"},
        "errorCode": {"type": "string"},
        "errorDetails": {"type": "string"},
    },
}
_PROBLEM = {"description": "error", "content": {"application/json": {"schema": {"type": "object"}}}}
_COMMON = {"401": _PROBLEM, "403": _PROBLEM, "413": _PROBLEM}
_BAD_CONTEXT = {"description": "bad context", "content": {"application/json": {"schema": _ERROR}}}
_REQUEST = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "context": {
                        "type": "object",
                        "properties": {"targetingKey": {"type": "string"}},
                        "additionalProperties": True,
                    }
                },
            }
        }
    },
}
_ENVIRONMENT = {
    "name": "environment",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "environment key, for tokens not bound to one",
}


def openapi_paths() -> dict[str, Any]:
    """The two OFREP operations, one flag and all flags, with their bodies and answers; a copy of its own for
    each schema, so nothing that edits one schema edits another."""
    return copy.deepcopy(
        {OFREP_PREFIX + "/{key}": {"post": _one_flag()}, OFREP_PREFIX: {"post": _all_flags()}}
    )


def _one_flag() -> dict[str, Any]:
    return {
        "tags": ["OFREP"],
        "summary": "Evaluate one flag (OFREP)",
        "operationId": "ofrep_evaluate_flag",
        "parameters": [
            {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}},
            _ENVIRONMENT,
        ],
        "requestBody": _REQUEST,
        "responses": {
            "200": {"description": "evaluated", "content": {"application/json": {"schema": _SUCCESS}}},
            "400": _BAD_CONTEXT,
            "404": {"description": "flag not found", "content": {"application/json": {"schema": _ERROR}}},
            **_COMMON,
        },
    }


def _all_flags() -> dict[str, Any]:
    flags = {
        "type": "object",
        "required": ["flags"],
        "properties": {"flags": {"type": "array", "items": {"type": "object"}}},
    }
    return {
        "tags": ["OFREP"],
        "summary": "Evaluate all flags (OFREP bulk)",
        "operationId": "ofrep_evaluate_flags",
        "parameters": [
            {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}},
            _ENVIRONMENT,
        ],
        "requestBody": _REQUEST,
        "responses": {
            "200": {"description": "evaluated", "content": {"application/json": {"schema": flags}}},
            "304": {"description": "unchanged since the ETag given in If-None-Match"},
            "400": _BAD_CONTEXT,
            **_COMMON,
        },
    }
