"""Write tests/vectors/bucketing.json: the published test vectors for other-language SDKs.

Run it only when the bucketing function changes on purpose (it never should: users' buckets would move).
"""

import json
from pathlib import Path

from rampup.core.bucketing import bucket, bucketing_unit, in_rollout, variant_bucket

PERCENTAGES = [0, 0.01, 1, 10, 25, 33.33, 50, 99.99, 100]
SALTS = ["workstation", "checkout-v2", "new.search_ui", "Ünïcode-salt", "a"]
KEYS = (
    [f"user-{i}" for i in range(150)]
    + [f"{i:08x}-{i * 7919 % 65536:04x}" for i in range(40)]
    + [
        "42",
        "0",
        "user@example.com",
        "用户-七",
        "emoji-🚀",
        "with space",
        "x" * 200,
        "-",
        "UPPER-lower",
        "tab\tkey",
    ]
)


# Stickiness by attribute: which unit a context is bucketed by, the attribute's fallbacks included.
UNIT_CONTEXTS: list[tuple[str, dict[str, object]]] = [
    *(("account_id", {"targetingKey": f"user-{i}", "account_id": f"acct-{i % 7}"}) for i in range(30)),
    ("account_id", {"targetingKey": "user-x", "account_id": 4711}),  # an integer: its decimal text
    ("account_id", {"targetingKey": "user-x", "account_id": -12}),
    ("account_id", {"targetingKey": "user-x"}),  # missing: the targeting key
    ("account_id", {"targetingKey": "user-x", "account_id": ""}),  # empty: the targeting key
    ("account_id", {"targetingKey": "user-x", "account_id": None}),
    ("account_id", {"targetingKey": "user-x", "account_id": True}),  # not a string or integer
    ("account_id", {"targetingKey": "user-x", "account_id": 1.5}),
    ("account_id", {"targetingKey": "user-x", "account_id": ["a"]}),
    ("account_id", {"account_id": "acct-0"}),  # no targeting key needed when the attribute is there
    ("account_id", {}),  # neither: no unit (evaluation answers TARGETING_KEY_MISSING)
    ("org.id", {"targetingKey": "u-1", "org.id": "Ünïcode-org 🚀"}),
]


def unit_case(salt: str, bucket_by: str, context: dict[str, object]) -> dict[str, object]:
    key = context.get("targetingKey")
    unit, bucketed_by = bucketing_unit(bucket_by, key if isinstance(key, str) else None, context)
    case: dict[str, object] = {
        "salt": salt,
        "bucket_by": bucket_by,
        "context": context,
        "unit": unit,
        "bucketed_by": bucketed_by,
    }
    if unit is not None:
        case["bucket"] = bucket(salt, unit)
        case["variant_bucket"] = variant_bucket(salt, unit)
        case["in_rollout"] = {f"{p:g}": in_rollout(salt, unit, p) for p in PERCENTAGES}
    return case


def main() -> None:
    cases = [
        {
            "salt": salt,
            "targeting_key": key,
            "bucket": bucket(salt, key),
            "variant_bucket": variant_bucket(salt, key),
            "in_rollout": {f"{p:g}": in_rollout(salt, key, p) for p in PERCENTAGES},
        }
        for salt in SALTS
        for key in KEYS
    ]
    doc = {
        "description": "Rampup sticky bucketing. bucket = murmur3_x86_32(utf8(salt + ':' + key), seed 0) as an "
        "unsigned 32-bit integer, mod 10000. variant_bucket uses seed 86028157. A user is in a "
        "rollout of p percent iff bucket < round(p * 100).",
        "buckets": 10000,
        "variant_seed": 86028157,
        "cases": cases,
        "unit_description": "Stickiness by attribute (bucket_by): the unit is the context attribute named by "
        "bucket_by when it is a non-empty string, or an integer written in decimal; otherwise the targeting "
        "key (bucketed_by 'targetingKey'). The unit then takes the targeting key's place in the formulas above.",
        "unit_cases": [
            unit_case(salt, bucket_by, context) for salt in SALTS[:2] for bucket_by, context in UNIT_CONTEXTS
        ],
    }
    out = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "bucketing.json"
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(cases)} cases and {len(doc['unit_cases'])} unit cases to {out}")


if __name__ == "__main__":
    main()
