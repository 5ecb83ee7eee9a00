"""OFREP's routes as /openapi.json describes them: they are served above FastAPI (`http/ofrep.py`), so FastAPI
cannot describe them, and the schema (and the fuzzing against it) would miss them."""

from typing import Any

from rampup.core.flags import Reason
from rampup.http.ofrep import OFREP_PREFIX

__all__ = ["openapi_paths"]


def openapi_paths() -> dict[str, Any]:
    """The two OFREP operations, one flag and all flags, with their bodies and answers."""
    success = {
        "type": "object",
        "required": ["key", "reason", "variant", "metadata"],
        "properties": {
            "key": {"type": "string"},
            "value": {},
            "reason": {
                "type": "string",
                "enum": [r.value for r in Reason if r is not Reason.ERROR],
            },
            "variant": {"type": "string"},
            "metadata": {"type": "object"},
        },
    }
    error = {
        "type": "object",
        "required": ["errorCode", "errorDetails"],
        "properties": {
            "key": {"type": "string"},
            "errorCode": {"type": "string"},
            "errorDetails": {"type": "string"},
        },
    }
    problem = {"description": "error", "content": {"application/json": {"schema": {"type": "object"}}}}
    request = {
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
    common = {"401": problem, "403": problem, "413": problem}
    environment = {
        "name": "environment",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "environment key, for tokens not bound to one",
    }
    return {
        OFREP_PREFIX + "/{key}": {
            "post": {
                "tags": ["OFREP"],
                "summary": "Evaluate one flag (OFREP)",
                "operationId": "ofrep_evaluate_flag",
                "parameters": [
                    {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}},
                    environment,
                ],
                "requestBody": request,
                "responses": {
                    "200": {"description": "evaluated", "content": {"application/json": {"schema": success}}},
                    "400": {"description": "bad context", "content": {"application/json": {"schema": error}}},
                    "404": {
                        "description": "flag not found",
                        "content": {"application/json": {"schema": error}},
                    },
                    **common,
                },
            }
        },
        OFREP_PREFIX: {
            "post": {
                "tags": ["OFREP"],
                "summary": "Evaluate all flags (OFREP bulk)",
                "operationId": "ofrep_evaluate_flags",
                "parameters": [
                    {
                        "name": "If-None-Match",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                    environment,
                ],
                "requestBody": request,
                "responses": {
                    "200": {
                        "description": "evaluated",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["flags"],
                                    "properties": {"flags": {"type": "array", "items": {"type": "object"}}},
                                }
                            }
                        },
                    },
                    "304": {"description": "unchanged since the ETag given in If-None-Match"},
                    "400": {"description": "bad context", "content": {"application/json": {"schema": error}}},
                    **common,
                },
            }
        },
    }
