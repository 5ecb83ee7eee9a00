"""Every read and every change the dashboard makes, in one place: view models built from the services (the
same ones the JSON API presents), and the commands, each acting as the signed-in token.

Templates get plain values from here and nothing else, so when a service changes shape only this file moves.
"""

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from markupsafe import Markup

from rampup.adapters.codecs.ofrep import OfrepError, encode_error, encode_single, parse_context
from rampup.adapters.reports.charts import svg_chart
from rampup.adapters.reports.labels import gate_unit, metric_label, value_text
from rampup.bootstrap import Container
from rampup.core.flags import flag_not_found
from rampup.core.plans import ACTIONS, Phase, Plan
from rampup.core.reports import Chart, Marker, comment_of, gate_lines, metric_chart
from rampup.core.rollups import FINE_RETENTION
from rampup.core.schedules import KINDS
from rampup.core.targeting import condition_text
from rampup.core.tokens import Scope
from rampup.errors import InvalidInput, NotFound, RampupError
from rampup.http.views import alert_out, alert_rule_out, flag_out, rollout_out, segment_out, switch_off_out
from rampup.services.feedback import FeedbackQuery
from rampup.services.metrics import MetricQuery
from rampup.services.reports import SHOWN_COMMENTS

__all__ = [
    "overview",
    "rollouts",
    "rollout",
    "rollout_command",
    "flags",
    "flag",
    "evaluate",
    "change_flag",
    "alerts",
    "deliveries",
    "reports",
    "report_document",
    "audit",
    "tokens",
    "create_token",
    "revoke_token",
    "live_fingerprint",
    "VERDICTS",
    "COMMANDS",
]

# Verdicts in words and symbols, so none is told by colour alone.
VERDICTS = {
    "pass": ("✓", "pass"),
    "warn": ("!", "warn"),
    "fail": ("✗", "fail"),
    "critical": ("✗✗", "critical"),
    "inconclusive": ("…", "not enough data"),
}
# What each command does, for its button and its confirmation.
COMMANDS = {
    "approve": "Approve the next stage",
    "advance": "Advance to the next stage now (skips the soak time and the gates)",
    "pause": "Pause: hold at this stage (safety rollbacks still act)",
    "resume": "Resume: let the controller advance again",
    "rollback": "Roll back one stage",
    "abort": "Abort: give up and go back to 0%",
    "disable": "Pull the kill switch: everyone gets the flag off",
}
RECENT_ROLLOUTS = 10
CHART_FAMILIES = (("error_rate", "error_rate"), ("api_latency", "api_latency_p95"), ("lcp", "lcp_p75"))
FINE_CHART_WINDOW = timedelta(minutes=30)  # up to this, chart points closer than a minute
FINE_STEPS = (1, 2, 5, 10, 15, 30)  # seconds between points: about 40 points over a short window


# ---------------------------------------------------------------- rollouts


def _gate_summary(gates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts: dict[str, int] = {}
    for gate in gates:
        counts[gate.get("verdict") or "inconclusive"] = (
            counts.get(gate.get("verdict") or "inconclusive", 0) + 1
        )
    return [{"verdict": v, "count": n, **_verdict(v)} for v, n in counts.items()]


def _verdict(verdict: str | None) -> dict[str, str]:
    symbol, words = VERDICTS.get(verdict or "", ("?", (verdict or "unknown").replace("_", " ")))
    return {"symbol": symbol, "words": words, "verdict": verdict or "unknown"}


def _stage_label(status: Mapping[str, Any]) -> str:
    stage = status["stage"]
    if stage["number"] == 0:
        return "not started · 0%"
    return f"Stage {stage['number']} of {len(status['stages'])} · {stage['percentage']:g}%"


def _summary(c: Container, status: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": status["id"],
        "name": status["name"],
        "flag": status["flag"],
        "environment": status["environment"],
        "state": status["state"],
        "stage_label": _stage_label(status),
        "stage_name": status["stage"]["name"],
        "soak_remaining_s": status["stage"]["soak_remaining_s"],
        "soak_until": _soak_until(c, status),
        "gates": _gate_summary(status["gates"]),
        "waiting_for": status.get("waiting_for", []),
        "created_at": status["created_at"],
    }


def _soak_until(c: Container, status: Mapping[str, Any]) -> datetime | None:
    left = status["stage"]["soak_remaining_s"]
    return None if left is None else c.clock() + timedelta(seconds=left)


def overview(c: Container) -> dict[str, Any]:
    everything = _rollouts(c)
    live = [r for r in everything if not Phase(r["state"]).is_terminal]
    recent = sorted(
        (r for r in everything if Phase(r["state"]).is_terminal), key=lambda r: r["id"], reverse=True
    )
    deliveries_ = c.notifications.deliveries(200)
    return {
        "live": [_summary(c, rollout_out(c.rollouts.rollout(r["id"]))) for r in live],
        "recent": [_summary(c, r) for r in recent[:RECENT_ROLLOUTS]],
        "firing": [alert_out(a) for a in c.alerts.alerts("firing", 50)],
        "failing": [d for d in deliveries_ if d.status == "failing"],
        "pending": sum(d.status == "pending" for d in deliveries_),
        "flag_count": len(c.flags.flags()),
    }


def rollouts(c: Container) -> list[dict[str, Any]]:
    return [_summary(c, r) for r in sorted(_rollouts(c), key=lambda r: r["id"], reverse=True)]


def _rollouts(c: Container, flag: str | None = None, live: bool | None = None) -> list[dict[str, Any]]:
    return [rollout_out(r) for r in c.rollouts.rollouts(flag=flag, live=live)]


def _gate_view(gate: Mapping[str, Any]) -> dict[str, Any]:
    """A gate's result for display, generically: known fields formatted in the metric's unit, any other field
    the gate reports listed as it is."""
    metric = str(gate.get("metric", ""))
    unit = gate_unit(metric, str(gate.get("compare", "absolute")))
    known = {"metric", "verdict", "value", "lower", "upper", "samples", "threshold", "compare", "needs"}
    return {
        "metric": metric,
        "label": _label(metric),
        **_verdict(gate.get("verdict")),
        "value": value_text(gate.get("value"), unit),
        "bounds": (
            f"{value_text(gate.get('lower'), unit)} – {value_text(gate.get('upper'), unit)}"
            if gate.get("lower") is not None or gate.get("upper") is not None
            else None
        ),
        "samples": gate.get("samples"),
        "threshold": gate.get("threshold") or "",
        "compare": {"control": "vs users without the feature", "baseline": "vs the week before"}.get(
            str(gate.get("compare")), ""
        ),
        "needs": gate.get("needs"),
        "other": {k: v for k, v in gate.items() if k not in known},
    }


def _label(metric: str) -> str:
    try:
        return metric_label(metric)
    except (KeyError, ValueError):
        return metric


def _markers(status: Mapping[str, Any], start: datetime, end: datetime) -> tuple[Marker, ...]:
    """Stage changes (labelled with the percentage they went to) and kill switches, from the timeline."""
    percentages = {0: 0.0, **{s["number"]: s["percentage"] for s in status["stages"]}}
    out = []
    for t in status["timeline"]:
        if not start <= t["at"] <= end:
            continue
        if t["to"] == "disabled" and t["from"] != "disabled":
            out.append(Marker(t["at"], "off"))
        elif t["to_stage"] != t["from_stage"]:
            out.append(Marker(t["at"], f"{percentages[t['to_stage']]:g}%"))
    return tuple(out)


def _charts(c: Container, status: Mapping[str, Any], plan: Plan | None) -> list[dict[str, Any]]:
    """Error rate, latency and LCP per variant since the rollout started, with bands, thresholds and stage
    changes; the percentiles the plan's gates judge, else p95 and p75."""
    now = c.clock()
    timeline = status["timeline"]
    start = timeline[0]["at"] if timeline else status["created_at"]
    terminal = Phase(status["state"]).is_terminal
    end = timeline[-1]["at"] if terminal and timeline else now
    window = max(end - start, timedelta(minutes=1))
    gated = [g.metric for g in plan.gates] if plan else []
    fine = window <= FINE_CHART_WINDOW and now - start < timedelta(seconds=FINE_RETENTION)
    step = _fine_step(window) if fine else None
    first = start - timedelta(seconds=step or 60)  # the chart opens one point before the rollout began
    out = []
    for family, default in CHART_FAMILIES:
        metric = next((m for m in gated if m.startswith(family)), default)
        try:
            result = c.metrics.query(
                MetricQuery(
                    status["environment"],
                    metric,
                    # whole minutes, one more than the window: the series starts at or before the rollout
                    (math.ceil(window.total_seconds() / 60) + 1) * 60,
                    status["flag"],
                    end,
                    step_s=step,
                )
            )
        except (NotFound, InvalidInput):
            continue  # the flag is gone, or the metric cannot be asked for here
        lines = gate_lines(plan, metric) if plan else ()
        shown = replace(result, series=tuple(p for p in result.series if p.at >= first))
        chart = metric_chart(metric, shown, _markers(status, start, end), first, end, lines)
        out.append({"metric": metric, "label": metric_label(metric), "svg": _svg(chart), "lines": lines})
    return out


def _fine_step(window: timedelta) -> int:
    return next((step for step in FINE_STEPS if window.total_seconds() / step <= 40), 60)


def _svg(chart: Chart) -> Markup:
    return Markup(
        svg_chart(chart, ZoneInfo("UTC"), lambda v: value_text(v, chart.unit), inline_style=False)
    )  # svg_chart escapes its text


def _plan(status: Mapping[str, Any]) -> Plan | None:
    try:
        return Plan.parse(status["plan"])
    except RampupError:
        return None


def rollout(c: Container, rollout_id: int) -> dict[str, Any]:
    status = rollout_out(c.rollouts.rollout(rollout_id))
    plan = _plan(status)
    number = status["stage"]["number"]
    signed = {(s["stage"], s["prerequisite"]): s for s in status["signoffs"]}
    stages = [
        {
            **s,
            "status": "done" if s["number"] < number else "current" if s["number"] == number else "ahead",
            "signoffs": [
                {"prerequisite": p, "signed": signed.get((s["number"], p))} for p in s["prerequisites"]
            ],
        }
        for s in status["stages"]
    ]
    missing = [
        {"stage": s["number"], "stage_name": s["name"], "prerequisite": x["prerequisite"]}
        for s in stages
        if s["number"] > number
        for x in s["signoffs"]
        if x["signed"] is None
    ]
    approvals = [
        s for s in stages if s["number"] == number + 1 and s["approval"] and "approve" in status["actions"]
    ]
    live = not Phase(status["state"]).is_terminal
    return {
        **_summary(c, status),
        "stages": stages,
        "percentage": status["stage"]["percentage"],
        "entered_at": status["stage"]["entered_at"],
        "gate_rows": [_gate_view(g) for g in status["gates"]],
        "charts": _charts(c, status, plan),
        "comments": _comments(c, status),
        "missing_signoffs": missing if live else [],
        "missing_approvals": approvals if live else [],
        "timeline": [
            {**t, "evidence": [_gate_view(e) if "verdict" in e else {"other": e} for e in t["evidence"]]}
            for t in reversed(status["timeline"])
        ],
        "actions": [a for a in status["actions"] if a in COMMANDS],
        "commands": COMMANDS,
        "created_by": status["created_by"],
    }


def _comments(c: Container, status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The newest comments on the rollout's flag, each with its variant: quoted as the reports quote them."""
    query = FeedbackQuery(status["environment"], status["flag"], commented=True, limit=SHOWN_COMMENTS)
    try:
        entries = c.feedback.page(query)
    except NotFound:  # the flag is gone
        return []
    return [{"variant": e.variants.get(status["flag"], ""), "comment": comment_of(e)} for e in entries]


def rollout_command(
    c: Container, rollout_id: int, action: str, actor: str, reason: str, prerequisite: str | None = None
) -> str:
    """Carry out a person's command; returns what happened, in words."""
    if action not in ACTIONS or action == "start":
        raise InvalidInput(f"unknown command {action!r}", where="action")
    if action != "signoff" and not reason.strip():
        raise InvalidInput("say why: the reason goes into the timeline and the audit log", where="reason")
    c.rollouts.act(rollout_id, action, actor, reason.strip(), prerequisite)
    if action == "signoff":
        return f"Signed off “{prerequisite}” as {actor}."
    return f"Rollout {rollout_id}: {action} done as {actor}."


# ---------------------------------------------------------------- flags


def flags(c: Container, query: str = "") -> dict[str, Any]:
    needle = query.strip().lower()
    environments = [e.key for e in c.flags.environments()]
    rows = []
    for view in c.flags.flags():
        d = view.record.definition
        if needle and needle not in d.key.lower() and needle not in d.description.lower():
            continue
        rows.append(
            {
                "key": d.key,
                "description": d.description,
                "type": d.type.value,
                "kind": view.stewardship.kind.value,
                "status": view.stewardship.status.value,
                "states": {env: view.states[env].to_dict() for env in environments if env in view.states},
                "updated_at": view.record.updated_at,
            }
        )
    return {"flags": rows, "environments": environments, "query": query}


def segments(c: Container, environment: str) -> dict[str, Any]:
    """One environment's segments (production unless another is asked for), with the flags that use each."""
    keys = [e.key for e in c.flags.environments()]
    env = _shown_environment(keys, environment)
    rows = []
    for view in c.segments.segments(env):
        row = segment_out(view)
        rows.append({**row, "conditions_text": [condition_text(x, ", ") for x in row["conditions"]]})
    return {"environment": env, "environments": keys, "segments": rows}


def _shown_environment(keys: list[str], asked: str | None) -> str:
    """The environment a page shows: the one asked for if it exists, else production, else the first."""
    return (
        asked if asked is not None and asked in keys else ("production" if "production" in keys else keys[0])
    )


def _prefix(key: str) -> str:
    return key.upper().replace("-", "_").replace(".", "_")


def _snippets(
    base_url: str, key: str, environment: str, env_id: int, state: Mapping[str, Any]
) -> list[dict[str, str]]:
    host = base_url.split("://", 1)[-1].rstrip("/")
    scheme = base_url.split("://", 1)[0]
    name = _prefix(key)
    return [
        {
            "id": "python",
            "title": "Python SDK",
            "text": (
                "from rampup.sdk import Client\n\n"
                f"# an sdk token for {environment}: rampup token create --scope sdk --env {environment}\n"
                f'with Client("{base_url.rstrip("/")}", SDK_TOKEN) as client:\n'
                f'    if client.is_enabled("{key}", user.id, {{"email": user.email}}):\n'
                "        ...  # the new code path\n"
            ),
        },
        {
            "id": "openfeature",
            "title": "OpenFeature (OFREP)",
            "text": (
                "from openfeature import api\n"
                "from openfeature.contrib.provider.ofrep import OFREPProvider\n"
                "from openfeature.evaluation_context import EvaluationContext\n\n"
                f'api.set_provider_and_wait(OFREPProvider("{base_url.rstrip("/")}",\n'
                '                               headers_factory=lambda: {"Authorization": f"Bearer {SDK_TOKEN}"}))\n'
                f'enabled = api.get_client().get_boolean_value("{key}", False, '
                'EvaluationContext(targeting_key="user-42"))\n\n'
                f"# or any HTTP client:\n# curl -X POST {base_url.rstrip('/')}/ofrep/v1/evaluate/flags/{key} "
                '-H "Authorization: Bearer $SDK_TOKEN" -H "Content-Type: application/json" '
                '-d \'{"context": {"targetingKey": "user-42"}}\'\n'
            ),
        },
        {
            "id": "sentry",
            "title": "Sentry DSN",
            "text": (
                f"# an ingest token for {environment}: rampup dsn --env {environment} prints the whole DSN\n"
                f"SENTRY_DSN={scheme}://<ingest token>@{host}/{env_id}\n\n"
                "import sentry_sdk\n"
                "sentry_sdk.init(dsn=SENTRY_DSN, traces_sample_rate=1.0)\n"
                f'sentry_sdk.set_tag("{key}_enabled", str(enabled).lower())  # attributes errors to the variant\n'
            ),
        },
        {
            "id": "env",
            "title": "Environment variables",
            "text": (
                f"# rampup env {key} --env {environment} --prefix {name}\n"
                f"{name}_ENABLED={'true' if state['enabled'] else 'false'}\n"
                f"{name}_ROLLOUT={state['rollout']:g}\n"
            ),
        },
    ]


def _rule_text(rule: Mapping[str, Any]) -> str:
    conditions = " and ".join(condition_text(c, ", ") for c in rule["conditions"])
    return f"{conditions} → {rule['variant'] if 'variant' in rule else format(rule['rollout'], 'g') + '%'}"


def flag(c: Container, key: str, environment: str | None, base_url: str) -> dict[str, Any]:
    view = c.flags.flag(key)
    envs = c.flags.environments()
    keys = [e.key for e in envs]
    env = _shown_environment(keys, environment)
    env_id = next(e.id for e in envs if e.key == env)
    state = view.states[env].to_dict()
    definition = view.record.definition
    return {
        "key": key,
        "description": definition.description,
        "type": definition.type.value,
        "variants": [{"name": v.name, "value": json.dumps(v.value)} for v in definition.variants],
        "environments": [
            {
                "key": e,
                **view.states[e].to_dict(),
                "rules_text": [_rule_text(r) for r in view.states[e].to_dict()["rules"]],
            }
            for e in keys
            if e in view.states
        ],
        "environment": env,
        "state": state,
        "switched_off": switch_off_out(view.switched_off.get(env)),
        "rules_text": [_rule_text(r) for r in state["rules"]],
        "rules_json": json.dumps(state["rules"], indent=2),
        "rollouts": [_summary(c, r) for r in _rollouts(c, flag=key)],
        "scheduled": [s.to_dict() for s in c.scheduled.changes(flag=key, environment=env, status="pending")],
        "history": [e.to_dict() for e in c.flags.audit(target=f"flag:{key}", limit=50)],
        "snippets": _snippets(base_url, key, env, env_id, state),
        "life": {k: v for k, v in flag_out(view).items() if k in _LIFE},
    }


_LIFE = ("kind", "lifetime_days", "notify", "status", "status_since", "archived_at", "references")


def evaluate(c: Container, key: str, environment: str, targeting_key: str, attributes: str) -> dict[str, Any]:
    """The OFREP answer for this context, computed by the OFREP endpoint's own codec and snapshot, so the
    tester and every OFREP client agree."""
    context: dict[str, Any] = {}
    if attributes.strip():
        try:
            parsed = json.loads(attributes)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"attributes are a JSON object: {exc.msg} at column {exc.colno}", where="attributes"
            ) from None
        if not isinstance(parsed, dict):
            raise InvalidInput(
                'attributes are a JSON object, like {"email": "a@example.com"}', where="attributes"
            )
        context.update(parsed)
    if targeting_key:
        context["targetingKey"] = targeting_key
    body = msgspec.json.encode({"context": context})
    snapshot = c.snapshots.current
    compiled = snapshot.flags.get(environment, {}).get(key)
    try:
        ctx = parse_context(body)
        status, payload = encode_single(compiled.evaluate(ctx) if compiled else flag_not_found(key))
    except OfrepError as exc:
        status, payload = encode_error(key, exc)
    return {
        "status": status,
        "answer": json.loads(payload),
        "answer_json": json.dumps(json.loads(payload), indent=2),
        "request_json": json.dumps({"context": context}, indent=2),
        "targeting_key": targeting_key,
        "attributes": attributes,
    }


def change_flag(
    c: Container, key: str, environment: str, change: str, fields: Mapping[str, str], actor: str
) -> str:
    """The flag page's forms: the rollout percentage, turning the flag on, its rules, and the kill switch."""
    reason = fields.get("reason", "").strip()
    if not reason:
        raise InvalidInput("say why: the reason goes into the audit log", where="reason")
    match change:
        case "rollout":
            try:
                percentage = float(fields.get("rollout", ""))
            except ValueError:
                raise InvalidInput("the rollout is a percentage from 0 to 100", where="rollout") from None
            state = c.flags.set_state(key, environment, {"rollout": percentage}, actor, reason)
            return f"{key} in {environment}: rollout {state.rollout:g}% (version {state.version})."
        case "enable":
            state = c.flags.set_state(key, environment, {"enabled": True}, actor, reason)
            return f"{key} in {environment} is on again (version {state.version})."
        case "rules":
            try:
                rules = json.loads(fields.get("rules", "") or "[]")
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"rules are JSON: {exc.msg} at line {exc.lineno}", where="rules") from None
            state = c.flags.set_state(key, environment, {"rules": rules}, actor, reason)
            return f"{key} in {environment}: {len(state.rules)} rule(s) saved (version {state.version})."
        case "kill":
            c.flags.kill(key, environment, actor, reason)
            return f"Kill switch pulled: {key} is off in {environment}."
    raise NotFound(f"no such change {change!r}")


# ---------------------------------------------------------------- alerts, deliveries, reports, audit, tokens


def alerts(c: Container) -> dict[str, Any]:
    return {
        "alerts": [alert_out(a) for a in c.alerts.alerts(None, 200)],
        "rules": [alert_rule_out(r) for r in c.alerts.rules()],
    }


def deliveries(c: Container, status: str = "") -> dict[str, Any]:
    items = c.notifications.deliveries(500)
    counts = {s: sum(d.status == s for d in items) for s in ("failing", "pending", "delivered")}
    shown = [d for d in items if not status or d.status == status]
    return {"deliveries": shown[:200], "counts": counts, "status": status}


def reports(c: Container) -> dict[str, Any]:
    return {"rollouts": rollouts(c), "kinds": KINDS}


def report_document(c: Container, kind: str, rollout_id: int, tz: str) -> str:
    return c.reports.render(c.reports.build(kind, rollout_id, tz=tz), "html")


def audit(c: Container, filters: Mapping[str, str]) -> dict[str, Any]:
    def given(name: str) -> str | None:
        value = filters.get(name, "").strip()
        return value or None

    before = given("before")
    if before is not None and not before.isdigit():
        raise InvalidInput("before is an entry id", where="before")
    limit = 100
    entries = c.flags.audit(
        target=given("target"),
        environment=given("environment"),
        actor=given("actor"),
        action=given("action"),
        limit=limit,
        before_id=int(before) if before else None,
    )
    rows = [
        {
            **e.to_dict(),
            "before_json": json.dumps(e.before, default=str, indent=1) if e.before is not None else "",
            "after_json": json.dumps(e.after, default=str, indent=1) if e.after is not None else "",
        }
        for e in entries
    ]
    return {
        "entries": rows,
        "filters": {k: filters.get(k, "") for k in ("target", "environment", "actor", "action")},
        "older": rows[-1]["id"] if len(rows) == limit else None,
        "environments": [e.key for e in c.flags.environments()],
    }


def tokens(c: Container) -> dict[str, Any]:
    return {
        "tokens": [t.to_dict() for t in reversed(c.tokens.tokens())],
        "scopes": [s.value for s in Scope],
        "environments": [e.key for e in c.flags.environments()],
    }


def create_token(c: Container, fields: Mapping[str, str], actor: str) -> dict[str, Any]:
    scope = fields.get("scope", "")
    environment = fields.get("environment") or None
    if scope in (Scope.ADMIN, Scope.WRITE, Scope.READ):
        environment = None  # these are not bound to one environment
    token, secret = c.tokens.create(scope, environment, fields.get("name") or None, actor)
    return {**token.to_dict(), "secret": secret}


def cancel_scheduled_change(c: Container, change_id: int, fields: Mapping[str, str], actor: str) -> str:
    scheduled = c.scheduled.cancel(change_id, actor, fields.get("reason", "").strip())
    return f"Scheduled change {change_id} of {scheduled.flag} in {scheduled.environment} cancelled."


def revoke_token(c: Container, token_id: str, actor: str) -> str:
    token = c.tokens.revoke(token_id, actor)
    return f"Token {token.name} ({token.id}) revoked."


# ---------------------------------------------------------------- live


def live_fingerprint(c: Container) -> str:
    """Changes whenever anything a page shows may have moved: the configuration's revision, every live
    rollout's state, firing alerts and deliveries; and every few seconds while a rollout is live, so its
    gates' numbers follow the traffic."""
    live = _rollouts(c, live=True)
    firing = [a.alert.id for a in c.alerts.alerts("firing", 100)]
    deliveries_ = [(d.id, d.status, d.attempts) for d in c.notifications.deliveries(20)]
    clock = int(c.clock().timestamp() // 5) if live else 0
    moving = [(r["id"], r["state"], r["stage"]["number"], str(r["stage"]["entered_at"])) for r in live]
    return f"{c.revision()}|{moving}|{firing}|{hash(tuple(deliveries_))}|{clock}"
