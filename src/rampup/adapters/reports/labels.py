"""What people call the metrics in reports and on the dashboard: error_rate → Error Rate,
api_latency_p95 → API Response (p95)."""

from rampup.core.telemetry import parse_metric_name

__all__ = ["metric_label"]

_LABELS = {
    "error_rate": "Error Rate",
    "unhandled_exceptions": "Critical Errors (unhandled exceptions)",
    "errors": "Errors",
    "api_latency": "API Response",
    "lcp": "Page Load (LCP)",
    "engagement": "User Engagement",
    "support_tickets": "Support Tickets",
    "lighthouse": "Lighthouse",
    "data_loss": "Data Loss",
    "exposures": "Exposures",
}


def metric_label(metric: str) -> str:
    base, q = parse_metric_name(metric)
    label = _LABELS.get(base, base)
    if q is None:
        return label
    return f"{label[:-1]} p{q * 100:g})" if label.endswith(")") else f"{label} (p{q * 100:g})"
