"""In-process cost of one 25 % boolean flag through the Python SDK, beside the floor and the peers' SDKs.

Method (PEERS.md §1, so the ratios are comparable): 100,000 distinct user ids; every case is a generated
tight loop ``for u in ids: if <expr>: n += 1`` with every name bound as a fast local; the cases run
interleaved, in a shuffled order per round, with the garbage collector off inside the timed loop; 2,000
calls of warm-up. Nothing talks to a server: the Rampup client starts from a bootstrap file (the server's
own document) with its server unreachable; peers load their flags offline with analytics and events off.
We report the median over rounds, the min–max range, the ratio to the floor, and the fraction of users
who got the flag (≈ 0.25 for every SDK: a sanity check). The Rampup cases are also checked user by user
against the floor.

The floor is the bucketing expression itself, inlined: ``mmh3.hash(f"{salt}:{u}", signed=False) % 10000 < 2500``.

Peers (growthbook, flagsmith, launchdarkly-server-sdk, UnleashClient) are pip-installed into this
interpreter when missing, unless --no-install; a peer that cannot be set up is reported and skipped.

Run:  python bench/sdk_eval.py [--rounds 5] [--users 100000] [--no-install]
"""

import argparse
import gc
import importlib
import importlib.metadata as metadata
import json
import logging
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mmh3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _quiet import busy_cpu, wait_quiet  # noqa: E402

FLAG = "workstation"
SALT = "workstation"
ROLLOUT = 25
FLOOR = "floor: mmh3.hash(f'{salt}:{u}') % 10000 < 2500"
PEERS = {
    "growthbook": "growthbook",
    "flagsmith": "flagsmith",
    "ldclient": "launchdarkly-server-sdk",
    "UnleashClient": "UnleashClient",
    "openfeature": "openfeature-sdk",
}


class Case:
    def __init__(
        self,
        name: str,
        expr: str,
        names: dict[str, Any],
        *,
        evaluates: bool = True,
        before_round: Callable[[], None] | None = None,
    ) -> None:
        self.name, self.expr, self.names, self.evaluates, self.before_round = (
            name,
            expr,
            names,
            evaluates,
            before_round,
        )
        self.loop = make_loop(expr, names)
        self.samples: list[float] = []
        self.hits = 0


def make_loop(expr: str, names: dict[str, Any]) -> Callable[[list[str]], tuple[int, int]]:
    """A function whose loop sees every name as a fast local (bound as default arguments)."""
    names = {"perf_counter_ns": time.perf_counter_ns, **names}
    params = ", ".join(f"{k}=__{k}" for k in names)
    src = (
        f"def timed(ids, {params}):\n"
        "    n = 0\n"
        "    t0 = perf_counter_ns()\n"
        "    for u in ids:\n"
        f"        if {expr}:\n"
        "            n += 1\n"
        "    return perf_counter_ns() - t0, n\n"
    )
    scope = {f"__{k}": v for k, v in names.items()}
    exec(compile(src, f"<case {expr}>", "exec"), scope)
    return scope["timed"]  # type: ignore[no-any-return]


def ensure_peers(install: bool) -> dict[str, str]:
    """module → why it is unavailable, for the peers that could not be imported (after installing)."""
    missing = [m for m in PEERS if importlib.util.find_spec(m) is None]
    if missing and install:
        packages = [PEERS[m] for m in missing]
        print(f"installing peers into {sys.prefix}: {' '.join(packages)}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *packages], check=False)
        importlib.invalidate_caches()
    return {m: f"{PEERS[m]} is not installed" for m in PEERS if importlib.util.find_spec(m) is None}


# ------------------------------------------------------------------------------------------ Rampup


def rampup_cases(tmp: Path) -> list[Case]:
    from openfeature import api as openfeature
    from openfeature.evaluation_context import EvaluationContext as OFContext

    from rampup.adapters.codecs.sdk_config import encode_config
    from rampup.core.flags import CompiledFlag, FlagDefinition, FlagState
    from rampup.sdk import Client
    from rampup.sdk.openfeature import RampupProvider

    flag = CompiledFlag(
        FlagDefinition(FLAG), FlagState(enabled=True, rollout_bp=ROLLOUT * 100, salt=SALT, version=1)
    )
    bootstrap = tmp / "rampup.json"
    bootstrap.write_bytes(encode_config("production", 1, {FLAG: flag}))
    nowhere = "http://127.0.0.1:9"  # refused at once: the client serves its bootstrap file
    plain = Client(nowhere, "rp_bench", bootstrap=bootstrap, start_timeout=0)
    exposing = Client(nowhere, "rp_bench", bootstrap=bootstrap, start_timeout=0, ingest_token="rp_bench")
    first_sight = Client(nowhere, "rp_bench", bootstrap=bootstrap, start_timeout=0, ingest_token="rp_bench")
    assert plain.ready and exposing.ready and first_sight.ready
    provider = RampupProvider(plain)
    openfeature.set_provider_and_wait(provider, "bench-rampup")
    of_rampup = openfeature.get_client("bench-rampup")

    def forget_exposures() -> None:  # every user is new again: each call records an exposure event
        assert first_sight._tracker is not None
        first_sight._tracker._seen = set()

    return [
        Case(
            "rampup: client.is_enabled(flag, u)",
            "client.is_enabled(flag, u)",
            {"client": plain, "flag": FLAG},
        ),
        Case(
            "rampup: client.is_enabled, exposures on, user seen before (dedup hit)",
            "client.is_enabled(flag, u)",
            {"client": exposing, "flag": FLAG},
        ),
        Case(
            "rampup: client.is_enabled, exposures on, every user new (event buffered)",
            "client.is_enabled(flag, u)",
            {"client": first_sight, "flag": FLAG},
            before_round=forget_exposures,
        ),
        Case(
            "rampup: client.evaluate(flag, u).value",
            "client.evaluate(flag, u).value",
            {"client": plain, "flag": FLAG},
        ),
        Case("rampup: CompiledFlag.is_on(u) (core, reference)", "is_on(u)", {"is_on": flag.is_on}),
        Case(
            "rampup: RampupProvider.resolve_boolean_details (no OpenFeature API)",
            "resolve(flag, False, OFContext(targeting_key=u)).value",
            {"resolve": provider.resolve_boolean_details, "flag": FLAG, "OFContext": OFContext},
        ),
        Case(
            "openfeature + RampupProvider",
            "of.get_boolean_value(flag, False, OFContext(targeting_key=u))",
            {"of": of_rampup, "flag": FLAG, "OFContext": OFContext},
        ),
    ]


# ------------------------------------------------------------------------------------------ peers


def openfeature_floor_case() -> Case:
    """A trivial provider doing the floor: what the OpenFeature API itself costs."""
    from openfeature import api as openfeature
    from openfeature.evaluation_context import EvaluationContext as OFContext
    from openfeature.flag_evaluation import FlagResolutionDetails
    from openfeature.provider import AbstractProvider, Metadata

    class Mmh3Provider(AbstractProvider):
        def get_metadata(self) -> Metadata:
            return Metadata(name="mmh3")

        def resolve_boolean_details(
            self, flag_key: str, default_value: bool, evaluation_context: Any = None
        ) -> FlagResolutionDetails[bool]:
            key = evaluation_context.targeting_key
            return FlagResolutionDetails(mmh3.hash(f"{SALT}:{key}", signed=False) % 10000 < ROLLOUT * 100)

        def resolve_string_details(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

        resolve_integer_details = resolve_float_details = resolve_object_details = resolve_string_details

    openfeature.set_provider_and_wait(Mmh3Provider(), "bench-mmh3")
    return Case(
        "openfeature + trivial mmh3 provider (API overhead)",
        "of.get_boolean_value(flag, False, OFContext(targeting_key=u))",
        {"of": openfeature.get_client("bench-mmh3"), "flag": FLAG, "OFContext": OFContext},
    )


def growthbook_cases() -> list[Case]:
    from growthbook import GrowthBook

    features = {
        FLAG: {
            "defaultValue": False,
            "rules": [{"coverage": ROLLOUT / 100, "force": True, "hashAttribute": "id"}],
        }
    }
    reused = GrowthBook(features=features)

    def reuse(u: str) -> bool:
        reused.set_attributes({"id": u})
        return bool(reused.is_on(FLAG))

    return [
        Case(
            "growthbook: new instance per user (documented)",
            "GrowthBook(attributes={'id': u}, features=features).is_on(flag)",
            {"GrowthBook": GrowthBook, "features": features, "flag": FLAG},
        ),
        Case("growthbook: one instance, set_attributes (one thread only)", "reuse(u)", {"reuse": reuse}),
    ]


def flagsmith_cases(tmp: Path) -> list[Case]:
    from flagsmith import Flagsmith
    from flagsmith.offline_handlers import LocalFileHandler

    def state(enabled: bool, segment: bool) -> dict[str, Any]:
        return {
            "enabled": enabled,
            "feature_state_value": None,
            "feature": {"id": 1, "name": FLAG},
            "featurestate_uuid": str(uuid.uuid4()),
            "multivariate_feature_state_values": [],
            **({"feature_segment": {"priority": 0}} if segment else {}),
        }

    split = {
        "type": "ANY",
        "rules": [],
        "conditions": [{"operator": "PERCENTAGE_SPLIT", "property_": "", "value": str(ROLLOUT)}],
    }
    document = {
        "api_key": "bench",
        "name": "bench",
        "identity_overrides": [],
        "feature_states": [state(False, False)],
        "project": {
            "segments": [
                {
                    "id": 1,
                    "name": f"{ROLLOUT}%",
                    "feature_states": [state(True, True)],
                    "rules": [{"type": "ALL", "conditions": [], "rules": [split]}],
                }
            ]
        },
    }
    path = tmp / "flagsmith.json"
    path.write_text(json.dumps(document))
    flagsmith = Flagsmith(offline_mode=True, offline_handler=LocalFileHandler(str(path)))
    return [
        Case(
            "flagsmith: offline local evaluation",
            "get_identity_flags(u).is_feature_enabled(flag)",
            {"get_identity_flags": flagsmith.get_identity_flags, "flag": FLAG},
        )
    ]


def launchdarkly_cases(tmp: Path) -> list[Case]:
    from ldclient import Context, LDClient
    from ldclient.config import Config
    from ldclient.integrations import Files

    flag = {
        "key": FLAG,
        "version": 1,
        "on": True,
        "variations": [True, False],
        "offVariation": 1,
        "salt": SALT,
        "targets": [],
        "contextTargets": [],
        "rules": [],
        "prerequisites": [],
        "trackEvents": False,
        "fallthrough": {
            "rollout": {
                "variations": [
                    {"variation": 0, "weight": ROLLOUT * 1000},
                    {"variation": 1, "weight": (100 - ROLLOUT) * 1000},
                ]
            }
        },
    }
    path = tmp / "launchdarkly.json"
    path.write_text(json.dumps({"flags": {FLAG: flag}}))
    config = Config(
        "sdk-bench",
        update_processor_class=Files.new_data_source(paths=[str(path)]),
        send_events=False,
        diagnostic_opt_out=True,
    )
    client = LDClient(config)
    deadline = time.monotonic() + 10
    while not client.is_initialized() and time.monotonic() < deadline:
        time.sleep(0.01)
    return [
        Case(
            "launchdarkly: variation(flag, Context.create(u))",
            "variation(flag, Context.create(u), False)",
            {"variation": client.variation, "Context": Context, "flag": FLAG},
        )
    ]


def unleash_cases(tmp: Path) -> list[Case]:
    from UnleashClient import UnleashClient
    from UnleashClient.cache import FileCache

    cache = FileCache("bench", directory=str(tmp / "unleash"))
    cache.bootstrap_from_dict(
        {
            "version": 1,
            "features": [
                {
                    "name": FLAG,
                    "enabled": True,
                    "strategies": [
                        {
                            "name": "flexibleRollout",
                            "parameters": {"rollout": str(ROLLOUT), "stickiness": "userId", "groupId": SALT},
                        }
                    ],
                }
            ],
        }
    )
    client = UnleashClient(
        url="http://127.0.0.1:9",
        app_name="bench",
        disable_metrics=True,
        disable_registration=True,
        cache=cache,
    )
    client.initialize_client(fetch_toggles=False)
    return [
        Case(
            "unleash: is_enabled(flag, {'userId': u})",
            "is_enabled(flag, {'userId': u})",
            {"is_enabled": client.is_enabled, "flag": FLAG},
        )
    ]


# ------------------------------------------------------------------------------------------ run


def fmt_ns(ns: float) -> str:
    return f"{ns / 1000:,.2f} µs" if ns >= 1000 else f"{ns:,.0f} ns"


def peer_cases(tmp: Path, unavailable: dict[str, str]) -> list[Case]:
    """The peers' cases; a peer that cannot be set up is added to `unavailable` with the reason."""
    cases: list[Case] = []
    setups: dict[str, Callable[[], list[Case]]] = {
        "openfeature": lambda: [openfeature_floor_case()],
        "growthbook": growthbook_cases,
        "flagsmith": lambda: flagsmith_cases(tmp),
        "ldclient": lambda: launchdarkly_cases(tmp),
        "UnleashClient": lambda: unleash_cases(tmp),
    }
    for module, setup in setups.items():
        if module in unavailable:
            continue
        try:
            cases += setup()
        except Exception as exc:  # one peer's setup problem must not cost the others' figures
            unavailable[module] = f"setup failed: {type(exc).__name__}: {exc}"

    return cases


def check_against_the_floor(cases: list[Case], ids: list[str]) -> None:
    """Correctness first: the Rampup cases agree with the floor user by user."""
    for case in cases:
        if case.name.startswith("rampup") or case.name.startswith("openfeature + Rampup"):
            single = make_loop(case.expr, case.names)
            for u in ids[:20_000]:
                assert single([u])[1] == (mmh3.hash(f"{SALT}:{u}", signed=False) % 10000 < 2500), (
                    case.name,
                    u,
                )


def measure(cases: list[Case], ids: list[str], rounds: int, rng: random.Random) -> float:
    """Fills each case's samples; returns the cores other processes kept busy meanwhile."""
    for case in cases:
        case.loop(ids[:2000])
    order = list(cases)
    busy, own, wall = busy_cpu(), time.process_time(), time.monotonic()
    for _ in range(rounds):
        rng.shuffle(order)
        for case in order:
            if case.before_round is not None:
                case.before_round()
            gc.collect()
            gc.disable()
            try:
                elapsed, n = case.loop(ids)
            finally:
                gc.enable()
            case.samples.append(elapsed / len(ids))
            case.hits = n
    return max(0.0, (busy_cpu() - busy) - (time.process_time() - own)) / (time.monotonic() - wall)


def report(cases: list[Case], ids: list[str], rounds: int, unavailable: dict[str, str], other: float) -> None:
    empty = statistics.median(cases[0].samples)
    floor = statistics.median(cases[1].samples)
    versions = ", ".join(f"{p} {metadata.version(p)}" for m, p in PEERS.items() if m not in unavailable)
    print(
        f"### SDK evaluation, one 25 % boolean flag ({len(ids):,} distinct users, {rounds} rounds interleaved "
        f"& shuffled, GC off; loop overhead {fmt_ns(empty)} included; other processes kept {other:.2f} cores busy)"
    )
    print()
    print(f"Peers: {versions or 'none'}.")
    for module, why in unavailable.items():
        print(f"Not measured: {PEERS[module]} ({why}).")
    print()
    print("| case | median | range | × floor | fraction on |")
    print("|---|---:|---:|---:|---:|")
    for case in cases:
        med = statistics.median(case.samples)
        fraction = f"{case.hits / len(ids):.4f}" if case.evaluates else "—"
        print(
            f"| {case.name} | {fmt_ns(med)} | {fmt_ns(min(case.samples))}–{fmt_ns(max(case.samples))} "
            f"| {med / floor:.2f} | {fraction} |"
        )
    print()
    by_name = {c.name: statistics.median(c.samples) for c in cases}
    is_enabled = by_name["rampup: client.is_enabled(flag, u)"]
    print(
        f"client.is_enabled: {fmt_ns(is_enabled)} = {is_enabled / floor:.2f}× the floor ({fmt_ns(floor)}); "
        f"goal ≤ 2×. Every Rampup case agreed with the floor user by user on 20,000 ids."
    )
    of_api = by_name.get("openfeature + trivial mmh3 provider (API overhead)")
    of_rampup = by_name["openfeature + RampupProvider"]
    if of_api is not None:
        print(
            f"Through OpenFeature: {fmt_ns(of_rampup)} per evaluation, of which the OpenFeature API itself "
            f"(trivial provider) is {fmt_ns(of_api)}: {of_rampup / is_enabled:.0f}× client.is_enabled."
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-install", action="store_true", help="do not pip-install missing peers; skip them")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for other processes to leave the CPUs alone",
    )
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)  # the clients' "server unreachable" warnings are expected here
    unavailable = ensure_peers(not args.no_install)
    wait_quiet(args.wait_quiet)

    rng = random.Random(args.seed)
    ids = [f"user-{rng.getrandbits(64):016x}" for _ in range(args.users)]
    assert len(set(ids)) == len(ids), "user ids must be distinct"

    def floor_fn(u: str, _hash: Any = mmh3.hash) -> bool:
        return bool(_hash(f"{SALT}:{u}", signed=False) % 10000 < ROLLOUT * 100)

    tmp = Path(tempfile.mkdtemp(prefix="rampup-sdk-bench-"))
    cases = [
        Case("loop.empty (baseline)", "False", {}, evaluates=False),
        Case(
            FLOOR,
            "mmh3_hash(f'{salt}:{u}', signed=False) % 10000 < 2500",
            {"mmh3_hash": mmh3.hash, "salt": SALT},
        ),
        Case("floor as a def: floor_fn(u)", "floor_fn(u)", {"floor_fn": floor_fn}),
    ]
    cases += rampup_cases(tmp)
    cases += peer_cases(tmp, unavailable)
    check_against_the_floor(cases, ids)
    other = measure(cases, ids, args.rounds, rng)
    report(cases, ids, args.rounds, unavailable, other)
    return 0


if __name__ == "__main__":
    sys.exit(main())
