"""OpenFeature (`openfeature-sdk`) support: a provider backed by a `Client`, and a hook for any provider.

    client = Client(URL, SDK_TOKEN)
    api.set_provider_and_wait(RampupProvider(client))
    api.add_hooks([RampupHook()])   # only needed for other providers (OFREP, flagd…): see below

`RampupProvider` evaluates in process with the client, so it answers what the server's OFREP endpoint
answers, without a request per flag. `RampupHook` writes what any provider evaluated into the current
request's scope, so the middleware's `request` events carry those flags too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode, ProviderNotReadyError
from openfeature.flag_evaluation import FlagEvaluationDetails, FlagResolutionDetails, FlagValueType, Reason
from openfeature.hook import Hook, HookContext, HookHints
from openfeature.provider import AbstractProvider, Metadata
from openfeature.track import TrackingEventDetails

from rampup.core.flags import ErrorCode as CoreErrorCode
from rampup.core.flags import FlagType
from rampup.core.flags import Reason as CoreReason
from rampup.sdk.client import Client
from rampup.sdk.tracking import current_request

__all__ = ["RampupProvider", "RampupHook"]

T = TypeVar("T")
_NO_VALUE = object()
# Rampup's reasons and error codes are OpenFeature's, by name; a dict beats an enum lookup per evaluation.
# ARCHIVED is Rampup's own, passed on as the string: OpenFeature reasons are open-ended strings.
_REASONS: dict[CoreReason, Reason | str] = {
    reason: Reason(reason.value) if reason.value in Reason.__members__ else reason.value
    for reason in CoreReason
}
_ERRORS = {code: ErrorCode(code.value) for code in CoreErrorCode}


def _boolean(value: Any) -> Any:
    return value if isinstance(value, bool) else _NO_VALUE


def _string(value: Any) -> Any:
    return value if isinstance(value, str) else _NO_VALUE


def _integer(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, float) and value.is_integer() else _NO_VALUE


def _float(value: Any) -> Any:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else _NO_VALUE


def _object(value: Any) -> Any:
    return value if isinstance(value, dict | list) else _NO_VALUE


class RampupProvider(AbstractProvider):
    """OpenFeature provider over a `Client`. `initialize` waits up to `ready_timeout` seconds for a
    configuration; a change of configuration emits PROVIDER_CONFIGURATION_CHANGED with the flags that changed.
    Shutting the provider down leaves the client open: it may serve the middleware too; close it yourself."""

    def __init__(self, client: Client, *, ready_timeout: float = 5.0) -> None:
        super().__init__()
        self._client = client
        self._ready_timeout = ready_timeout
        self._lock = threading.Lock()
        self._state = "pending"  # → "ready", or "not_ready" until a configuration arrives
        client._on_change(self._changed)

    def get_metadata(self) -> Metadata:
        return Metadata(name="rampup")

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        ready = self._client.wait_ready(self._ready_timeout)
        with self._lock:
            self._state = "ready" if ready else "not_ready"
        if not ready:
            raise ProviderNotReadyError(
                "no flag configuration yet: the Rampup server has not answered and the "
                "client has no bootstrap file"
            )

    def _changed(self, flags: set[str]) -> None:
        with self._lock:
            state, self._state = self._state, "ready" if self._state != "pending" else "pending"
        if state == "ready":
            self.emit_provider_configuration_changed(ProviderEventDetails(flags_changed=sorted(flags)))
        elif state == "not_ready":
            self.emit_provider_ready(ProviderEventDetails())

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context, FlagType.BOOLEAN, _boolean)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context, FlagType.STRING, _string)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, evaluation_context, FlagType.NUMBER, _integer)

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, evaluation_context, FlagType.NUMBER, _float)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return self._resolve(flag_key, default_value, evaluation_context, FlagType.OBJECT, _object)

    def _resolve(
        self,
        flag_key: str,
        default: T,
        context: EvaluationContext | None,
        expected: FlagType,
        convert: Callable[[Any], Any],
    ) -> FlagResolutionDetails[T]:
        targeting_key, attributes = (
            (context.targeting_key, context.attributes) if context is not None else (None, None)
        )
        res = self._client._evaluate(flag_key, targeting_key, attributes, default, expected)
        if res.error_code is not None:
            code = _ERRORS[res.error_code] if self._client.ready else ErrorCode.PROVIDER_NOT_READY
            return FlagResolutionDetails(default, code, res.error_message, Reason.ERROR)
        value = convert(res.value)
        if value is _NO_VALUE:
            return FlagResolutionDetails(
                default,
                ErrorCode.TYPE_MISMATCH,
                f"flag {flag_key!r} has the value {res.value!r}, not a {expected.value}",
                Reason.ERROR,
            )
        return FlagResolutionDetails(
            value, None, None, _REASONS[res.reason], res.variant, {"version": res.version}
        )

    def track(
        self,
        tracking_event_name: str,
        evaluation_context: EvaluationContext | None = None,
        tracking_event_details: TrackingEventDetails | None = None,
    ) -> None:
        """A custom event; the detail attribute `engagement: True` feeds the engagement metric, other scalar
        attributes become tags."""
        attributes = dict(tracking_event_details.attributes) if tracking_event_details is not None else {}
        engagement = attributes.pop("engagement", False) is True
        tags = {k: v for k, v in attributes.items() if isinstance(v, str | int | float | bool)}
        self._client.track(
            tracking_event_name,
            evaluation_context.targeting_key if evaluation_context else None,
            value=tracking_event_details.value if tracking_event_details is not None else None,
            engagement=engagement,
            tags=tags,
        )


class RampupHook(Hook):
    """Puts every flag an OpenFeature client evaluated into the current request's telemetry (with the
    middleware installed): the variant, or the value for booleans. Errors are left out: a default is not
    something the server served."""

    def after(
        self, hook_context: HookContext, details: FlagEvaluationDetails[FlagValueType], hints: HookHints
    ) -> None:
        request = current_request.get()
        if request is None or details.error_code is not None:
            return
        value = details.value
        reported: bool | str | int | float | None = value if isinstance(value, bool) else details.variant
        if reported is None and isinstance(value, str | int | float):
            reported = value
        if reported is not None:
            request.saw(details.flag_key, reported, hook_context.evaluation_context.targeting_key)
