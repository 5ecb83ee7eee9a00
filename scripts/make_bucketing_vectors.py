"""Write tests/vectors/bucketing.json: the published test vectors for other-language SDKs.

Run it only when the bucketing function changes on purpose (it never should: users' buckets would move).
"""

import json
from pathlib import Path

from rampup.core.bucketing import bucket, in_rollout, variant_bucket

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
    }
    out = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "bucketing.json"
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
