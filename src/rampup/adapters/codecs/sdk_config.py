"""The flag configuration SDKs evaluate locally: one document per environment and revision.

Server and SDK use this one codec, so the SDK builds exactly the `CompiledFlag`s the server evaluates with:
the same answer for the same user, bit for bit.
"""

from collections.abc import Mapping
from typing import Any

import msgspec

from rampup.core.flags import (
    CompiledFlag,
    FlagDefinition,
    FlagState,
    compile_flags,
    parse_bucket_by,
    parse_prerequisites,
    parse_rollout,
    parse_weights,
)
from rampup.core.segments import Segment
from rampup.core.targeting import Rule

__all__ = ["encode_config", "decode_config"]


def encode_config(environment: str, revision: int, flags: Mapping[str, CompiledFlag]) -> bytes:
    # Only the segments some rule refers to: the others' keys are of no use to an SDK.
    segments = {key: segment for f in flags.values() for key, segment in f.segments.items()}
    return msgspec.json.encode(
        {
            "environment": environment,
            "revision": revision,
            # `archived` only where true: an older SDK ignores it and, the archived state being uniform, still
            # gives every user the same final value (with the state's own reason).
            "flags": [
                {**f.definition.to_dict(), **f.state.to_dict(), **({"archived": True} if f.archived else {})}
                for f in flags.values()
            ],
            "segments": [segments[key].to_config() for key in sorted(segments)],
        }
    )


def decode_config(body: bytes | str) -> tuple[str, int, dict[str, CompiledFlag]]:
    """(environment, revision, flags). Raises ValueError (or a RampupError) on a document it cannot trust."""
    doc: Any = msgspec.json.decode(body)
    pairs = []
    archived: set[str] = set()
    for raw in doc["flags"]:
        definition = FlagDefinition.parse(
            raw["key"],
            raw["type"],
            raw.get("description", ""),
            raw["variants"] if raw["type"] != "boolean" else None,
            raw["off_variant"],
        )
        state = FlagState(
            enabled=bool(raw["enabled"]),
            rollout_bp=parse_rollout(raw["rollout"]),
            rules=tuple(
                Rule.parse(r, f"rules[{i}]", definition.variant_names) for i, r in enumerate(raw["rules"])
            ),
            salt=raw["salt"],
            weights=parse_weights(raw["weights"], definition),
            version=int(raw["version"]),
            bucket_by=parse_bucket_by(raw.get("bucket_by")),
            prerequisites=parse_prerequisites(raw.get("prerequisites", []), definition.key),
        )
        pairs.append((definition, state))
        if raw.get("archived") is True:
            archived.add(definition.key)
    segments = {s.key: s for s in map(Segment.from_config, doc.get("segments", []))}
    return str(doc["environment"]), int(doc["revision"]), compile_flags(pairs, archived, segments)
