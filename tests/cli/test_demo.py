"""`rampup demo`: the synthetic users it sends, and the command itself against its own server."""

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx

from rampup.core.bucketing import in_rollout
from rampup.demo import REGRESSING_FLAG, DemoTraffic, Tokens
from tests.support.ports import free_port
from tests.support.waiting import PATIENCE_S, wait_until


class Flags:
    """The SDK's answer for each user: the flag's bucketing at a fixed percentage."""

    def __init__(self, percentage: float) -> None:
        self.percentage = percentage

    def is_enabled(self, key: str, user: str) -> bool:
        return in_rollout(key, user, self.percentage)


def failures(events: list[dict[str, object]], treatment: bool) -> float:
    requests = [e for e in events if e["type"] == "request" and e["flags"].get(REGRESSING_FLAG) is treatment]  # type: ignore[attr-defined]
    return sum(not e["ok"] for e in requests) / len(requests)


def test_the_regressing_flag_fails_its_treatment_only_when_told() -> None:
    traffic = DemoTraffic("http://unused", Tokens("sdk", "ingest"), 2, "admin", seed=1)
    at = datetime(2026, 5, 1, tzinfo=UTC)
    healthy = traffic.batch(Flags(25), 40_000, False, at)  # type: ignore[arg-type]
    broken = traffic.batch(Flags(25), 40_000, True, at)  # type: ignore[arg-type]
    assert failures(healthy, True) < 0.002 and failures(healthy, False) < 0.002
    assert 0.07 < failures(broken, True) < 0.09 and failures(broken, False) < 0.002
    # checkout requests name only their own flag and no user: no other flag is charged with their failures
    checkout = [e for e in broken if REGRESSING_FLAG in e.get("flags", {})]
    assert checkout and all("targeting_key" not in e and len(e["flags"]) == 1 for e in checkout)
    web = [e for e in healthy if e["type"] == "request" and "workstation" in e["flags"]]
    assert {e["type"] for e in healthy} >= {"request", "page_load"}
    share = sum(e["flags"]["workstation"] for e in web) / len(web)
    assert 0.23 < share < 0.27  # the users' variants are the flag's own bucketing
    rated = [e for e in healthy if e["type"] == "feedback"]
    assert 0.002 < len(rated) / len(web) < 0.006 and all(1 <= e["rating"] <= 5 for e in rated)
    assert any("comment" in e for e in rated) and all(e["flags"] and e["targeting_key"] for e in rated)


def test_the_demo_starts_both_rollouts_and_sends_traffic_a_token_signs_in_with(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "rampup", "demo", "--port", str(port), "--rate", "200"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def started() -> re.Match[str] | None:
            assert process.poll() is None, log.read_text()
            return re.search(r"admin token:\s+(\S+)", log.read_text())

        wait_until(started, "the demo's admin token", detail=log.read_text)
        url = f"http://127.0.0.1:{port}"
        assert url in log.read_text()
        token = started().group(1)  # type: ignore[union-attr]
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=PATIENCE_S
        ) as api:
            folder = check_the_demo(api, httpx.Client(base_url=url, timeout=PATIENCE_S), log.read_text())
    finally:
        process.terminate()
        process.wait(timeout=PATIENCE_S)
    assert not folder.exists(), "the throwaway database stays behind"


def check_the_demo(api: httpx.Client, browser: httpx.Client, output: str) -> Path:
    with browser:
        rollouts = {r["flag"]: r for r in api.get("/api/v1/rollouts").json()}
        assert set(rollouts) == {"workstation", REGRESSING_FLAG}
        assert rollouts["workstation"]["state"] == "awaiting_approval"  # waits for its two sign-offs
        wait_until(
            lambda: api.get(
                "/api/v1/metrics",
                params={"metric": "error_rate", "environment": "production", "window": "5m"},
            ).json()["variants"]["all"]["samples"],
            "the demo's traffic",
            interval=0.2,
        )
        nonce = re.search(r'name="nonce" value="([^"]+)"', browser.get("/sign-in").text)
        assert nonce
        token = re.search(r"admin token:\s+(\S+)", output).group(1)  # type: ignore[union-attr]
        signed = browser.post("/sign-in", data={"nonce": nonce.group(1), "token": token, "next": "/"})
        assert signed.status_code == 303
        assert "checkout-v2-rollout" in browser.get("/").text
        folder = Path(re.search(r"Database: (\S+)/demo\.db", output).group(1))  # type: ignore[union-attr]
        assert folder.exists()
        return folder
