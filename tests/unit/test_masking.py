"""One masking function for every view of a URL: what stays tells channels apart, what goes could post."""

import pytest

from rampup.core.masking import mask_url, mask_urls


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/XXXXsecretXXXX",
            "https://hooks.slack.com/services/T0…/***",
        ),
        ("https://user:pw@example.com/hook?token=abc#frag", "https://***@example.com/hook?***"),
        ("https://events.pagerduty.com/v2/enqueue", "https://events.pagerduty.com/v2/enqueue"),
        ("https://ci.example.com/rampup", "https://ci.example.com/rampup"),
        ("https://example.com/hooks/3f9a8b7c6d5e4f", "https://example.com/hooks/3f…"),
        ("https://example.com/a1b2", "https://example.com/***"),
        ("https://example.com/K3y/more/parts", "https://example.com/***/***"),
        ("http://127.0.0.1:8080/in/Secret123456?x=1", "http://127.0.0.1:8080/in/Se…?***"),
        ("https://[::1]:80/x", "https://[::1]:80/x"),
        ("https://example.com", "https://example.com"),
        ("not a url", "***"),
        ("https://[broken/", "***"),
    ],
)
def test_a_url_shows_its_host_and_route_only(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_urls_inside_text_and_data_are_masked_and_the_rest_kept() -> None:
    text = "POST https://hooks.slack.com/services/T0123ABCD/B0/x: ConnectError (see https://a.example/T0k3n)."
    assert (
        mask_urls(text)
        == "POST https://hooks.slack.com/services/T0…/***: ConnectError (see https://a.example/***)."
    )
    plan = {"hooks": {"webhook": "https://x.example/hook?sig=1"}, "stages": [{"percentage": 10}], "srm": True}
    assert mask_urls(plan) == {
        "hooks": {"webhook": "https://x.example/hook?***"},
        "stages": [{"percentage": 10}],
        "srm": True,
    }
