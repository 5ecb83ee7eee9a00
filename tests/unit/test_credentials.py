"""The one token check the admin API and OFREP share: where a request's token is read from, and what each
refusal says."""

from datetime import UTC, datetime

import pytest

from rampup.core.tokens import Scope, Token, hash_secret
from rampup.errors import Forbidden, Unauthorized
from rampup.http.credentials import authenticate, secret_of
from rampup.services.snapshot import Snapshot

SDK = Token("t1", "web", Scope.SDK, "production", hash_secret("s3cret"), datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("authorization", "api_key", "secret"),
    [
        ("Bearer s3cret", None, "s3cret"),
        ("bearer  s3cret ", None, "s3cret"),
        (None, "s3cret", "s3cret"),
        ("Basic dXNlcg==", "s3cret", "s3cret"),  # not a bearer token: the API key header counts
        ("Basic dXNlcg==", None, None),
        ("Bearer ", " ", None),
    ],
)
def test_the_token_is_read_from_a_bearer_header_or_the_api_key(
    authorization: str | None, api_key: str | None, secret: str | None
) -> None:
    assert secret_of(authorization, api_key) == secret


def test_missing_unknown_and_too_weak_tokens_are_refused_saying_which() -> None:
    snapshot = Snapshot(1, tokens={SDK.secret_hash: SDK})
    assert authenticate(snapshot, "s3cret", Scope.SDK) == SDK
    with pytest.raises(Unauthorized, match="missing token"):
        authenticate(snapshot, None, Scope.SDK)
    with pytest.raises(Unauthorized, match="unknown or revoked"):
        authenticate(snapshot, "guess", Scope.SDK)
    with pytest.raises(Forbidden, match="needs the read scope"):
        authenticate(snapshot, "s3cret", Scope.READ)
