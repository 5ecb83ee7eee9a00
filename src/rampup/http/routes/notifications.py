"""/api/v1/channels, /api/v1/notifications, /api/v1/alert-rules and /api/v1/alerts."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query

from rampup.http.deps import Admin, ContainerDep, Reader, Writer
from rampup.http.schemas import AlertRuleIn, ChannelIn, ErrorOut
from rampup.http.views import alert_out, alert_rule_out, delivery_out

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1",
    tags=["notifications"],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)

ChannelName = Annotated[str, Path(max_length=64)]
CHANNEL_EXAMPLES = {
    "webhook": {
        "value": {
            "name": "rollout-hook",
            "type": "webhook",
            "url": "https://example.com/hook",
            "secret": "a-long-shared-secret",
        }
    },
    "slack": {
        "value": {"name": "rollout-channel", "type": "slack", "url": "https://hooks.slack.com/services/…"}
    },
    "email": {
        "value": {
            "name": "support-email",
            "type": "email",
            "host": "smtp.example.com",
            "port": 587,
            "from": "rampup@example.com",
            "to": ["support@example.com"],
            "starttls": True,
            "username": "rampup",
            "password": "…",
        }
    },
    "pagerduty": {
        "value": {"name": "pager", "type": "pagerduty", "routing_key": "…", "min_severity": "critical"}
    },
}


@router.get("/channels", tags=["notifications"])
def list_channels(c: ContainerDep, _: Reader) -> list[dict[str, Any]]:
    """Channels, secrets masked."""
    return [channel.public() for channel in c.notifications.channels()]


@router.post("/channels", status_code=201, responses={409: {"model": ErrorOut}})
def create_channel(
    c: ContainerDep, token: Admin, body: Annotated[ChannelIn, Body(openapi_examples=CHANNEL_EXAMPLES)]
) -> dict[str, Any]:
    """A channel: slack {url}, webhook {url, secret}, email {host, port, from, to, starttls, username, password},
    pagerduty {routing_key, url}; `min_severity` (info, warning, critical) filters what it gets."""
    given = body.model_dump(by_alias=True, exclude_unset=True)
    return c.notifications.create_channel(given, token.name).public()


@router.get("/channels/{name}")
def get_channel(name: ChannelName, c: ContainerDep, _: Reader) -> dict[str, Any]:
    return c.notifications.channel(name).public()


@router.delete("/channels/{name}", status_code=204)
def delete_channel(name: ChannelName, c: ContainerDep, token: Admin) -> None:
    c.notifications.delete_channel(name, token.name)


@router.post("/channels/{name}/test", status_code=202)
def test_channel(name: ChannelName, c: ContainerDep, token: Writer) -> dict[str, str]:
    """Queue a test notification to the channel; watch it in /notifications."""
    return {"notification_id": c.notifications.test(name, token.name)}


@router.get("/notifications")
def deliveries(
    c: ContainerDep, _: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    """Every delivery (notifications and hooks), newest first: pending, failing (with the last error) or
    delivered."""
    return [delivery_out(d) for d in c.notifications.deliveries(limit)]


@router.get("/alert-rules", tags=["alerts"])
def list_alert_rules(c: ContainerDep, _: Reader) -> list[dict[str, Any]]:
    return [alert_rule_out(r) for r in c.alerts.rules()]


@router.post("/alert-rules", status_code=201, tags=["alerts"])
def create_alert_rule(
    c: ContainerDep,
    token: Writer,
    body: Annotated[
        AlertRuleIn,
        Body(
            openapi_examples={
                "error rate": {
                    "value": {
                        "name": "Workstation error rate",
                        "environment": "production",
                        "flag": "workstation",
                        "metric": "error_rate",
                        "condition": "> 0.5%",
                        "window": "5m",
                        "for": "5m",
                        "severity": "critical",
                        "channels": ["rollout-channel"],
                    }
                },
                "critical errors": {
                    "value": {
                        "environment": "production",
                        "metric": "unhandled_exceptions",
                        "condition": "> 5",
                        "window": "5m",
                        "severity": "critical",
                        "channels": ["pager"],
                    }
                },
            }
        ),
    ],
) -> dict[str, Any]:
    """A metric condition over a trailing window, sustained `for` a duration; severity, filters, channels."""
    created = c.alerts.create(body.model_dump(by_alias=True, exclude_unset=True), token.name)
    return {"id": created.id, **created.rule.to_dict()}


@router.delete("/alert-rules/{rule_id}", status_code=204, tags=["alerts"])
def delete_alert_rule(
    rule_id: Annotated[int, Path(ge=1, le=2**31 - 1)], c: ContainerDep, token: Writer
) -> None:
    c.alerts.delete(rule_id, token.name)


@router.get("/alerts", tags=["alerts"])
def list_alerts(
    c: ContainerDep,
    _: Reader,
    state: Annotated[Literal["firing", "resolved"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Alerts, newest first: firing ones and resolved ones."""
    return [alert_out(a) for a in c.alerts.alerts(state, limit)]
