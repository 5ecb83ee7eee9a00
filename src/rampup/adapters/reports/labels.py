"""What people call the metrics in reports, on the dashboard and in the command line (error_rate → Error Rate,
api_latency_p95 → API Response (p95)), and how their values read (0.81%, +12%, 412 ms, 1,204)."""

import math

from rampup.core.telemetry import BUILTIN_METRICS, parse_metric_name

__all__ = ["gate_unit", "metric_label", "percent_text", "value_text"]

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


def percent_text(fraction: float, sign: bool = False) -> str:
    """Three significant digits, never an exponent: 0.000411 → 0.0411%."""
    p = fraction * 100
    if p == 0:
        return "0%"
    digits = max(0, 2 - math.floor(math.log10(abs(p))))
    text = f"{p:+.{digits}f}" if sign else f"{p:.{digits}f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + "%"


def value_text(value: float | None, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    match unit:
        case "fraction":
            return percent_text(value)
        case "relative":
            return percent_text(value, sign=True)
        case "ms":
            return f"{value:.0f} ms" if abs(value) < 1000 else f"{value / 1000:.3g} s"
        case "count":
            return f"{value:,.0f}"
        case "score":
            return f"{value:.0f}"
    return f"{value:.3g} {unit}".strip()


def gate_unit(metric: str, compare: str) -> str:
    """The unit of a gate's value as a gate result gives it: the metric's for an absolute gate, a relative
    change for a gate against control or baseline."""
    if compare != "absolute":
        return "relative"
    spec = BUILTIN_METRICS.get(parse_metric_name(metric)[0])
    return spec.unit if spec else ""
