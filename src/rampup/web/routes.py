"""The dashboard's pages and forms. Reads and changes go through `data`; who may do what through `auth`.

Changing forms answer with a redirect back to their page (a flash message says what happened), so a reload
never repeats a change. Errors are pages too, with the status that fits.
"""

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from rampup.core.sessions import Session
from rampup.core.tokens import Scope
from rampup.errors import Forbidden, InvalidInput, RampupError
from rampup.http.deps import container
from rampup.http.errors import status_of
from rampup.web import data
from rampup.web.auth import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    Form,
    NotSignedIn,
    Viewer,
    check_csrf,
    set_cookie,
    sign_in_nonce,
)
from rampup.web.live import live_stream
from rampup.web.pages import render

__all__ = ["router", "static"]

FLASH_COOKIE = "rampup_flash"
STATIC = Path(__file__).with_name("static")
static = StaticFiles(directory=STATIC)


class PageRoute(APIRoute):
    """Errors on dashboard routes are pages, not JSON; a missing session sends a page view to sign-in."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except NotSignedIn:
                if request.method == "GET" and request.url.path != "/live":
                    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    return RedirectResponse(f"/sign-in?next={quote(target)}", status_code=303)
                return render(request, "error.html.j2", None, {"message": "Sign in first."}, status=401)
            except RampupError as exc:
                return render(
                    request,
                    "error.html.j2",
                    None,
                    {"message": exc.message, "where": exc.where},
                    status_of(exc),
                )

        return handle


router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _flash(request: Request) -> tuple[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    kind, _, text = unquote(raw).partition(":")
    return (kind if kind in ("ok", "error") else "ok", text)


async def _page(
    request: Request, template: str, session: Session, build: Callable[[], dict[str, Any]], status: int = 200
) -> Response:
    values = await run_in_threadpool(build)
    response = render(request, template, session, {**values, "flash": _flash(request)}, status)
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def _back(request: Request, to: str, kind: str, message: str) -> Response:
    response = RedirectResponse(to, status_code=303)
    set_cookie(request, response, FLASH_COOKIE, quote(f"{kind}:{message}"[:1500]), 60)
    return response


async def _change(
    request: Request,
    session: Session,
    fields: dict[str, str],
    scope: Scope,
    back_to: str,
    change: Callable[[], str],
) -> Response:
    """A checked change: CSRF and scope refused with 403, the confirmation box required; what the service
    refuses (a conflict, bad input) comes back as a message on the page."""
    check_csrf(request, session, fields, scope)
    if fields.get("confirm") != "yes":
        return _back(request, back_to, "error", "Nothing changed: tick the box to confirm.")
    try:
        message = await run_in_threadpool(change)
    except InvalidInput as exc:
        return _back(request, back_to, "error", f"Nothing changed: {exc.message}")
    except RampupError as exc:
        if status_of(exc) in (401, 403):
            raise
        return _back(request, back_to, "error", f"Nothing changed: {exc.message}")
    return _back(request, back_to, "ok", message)


# ---------------------------------------------------------------- sign-in


@router.get("/sign-in")
async def sign_in_page(request: Request, next: Annotated[str, Query(max_length=500)] = "/") -> Response:
    nonce = sign_in_nonce()
    response = render(request, "sign_in.html.j2", None, {"nonce": nonce, "next": _local(next), "error": None})
    set_cookie(request, response, SIGN_IN_COOKIE, nonce, 600)
    return response


def _local(target: str) -> str:
    """Only a path on this server: never send a signed-in browser elsewhere."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


@router.post("/sign-in")
async def sign_in(request: Request, fields: Form) -> Response:
    c = container(request)
    nonce = request.cookies.get(SIGN_IN_COOKIE, "")
    target = _local(fields.get("next", "/"))

    def again(message: str, status: int) -> Response:
        fresh = sign_in_nonce()
        response = render(
            request, "sign_in.html.j2", None, {"nonce": fresh, "next": target, "error": message}, status
        )
        set_cookie(request, response, SIGN_IN_COOKIE, fresh, 600)
        return response

    if not nonce or fields.get("nonce") != nonce:
        return again("The sign-in form expired or came from elsewhere; try again.", 403)
    try:
        secret, session = await run_in_threadpool(c.sessions.sign_in, fields.get("token", ""))
    except RampupError as exc:
        return again(exc.message, status_of(exc))
    response = RedirectResponse(target, status_code=303)
    set_cookie(request, response, SESSION_COOKIE, secret, None)
    response.delete_cookie(SIGN_IN_COOKIE, path="/")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, session: Viewer, fields: Form) -> Response:
    check_csrf(request, session, fields, Scope.READ)
    secret = request.cookies.get(SESSION_COOKIE, "")
    await run_in_threadpool(container(request).sessions.sign_out, secret)
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ---------------------------------------------------------------- pages


@router.get("/")
async def overview(request: Request, session: Viewer) -> Response:
    return await _page(request, "overview.html.j2", session, lambda: data.overview(container(request)))


@router.get("/rollouts")
async def rollouts(request: Request, session: Viewer) -> Response:
    return await _page(
        request, "rollouts.html.j2", session, lambda: {"rollouts": data.rollouts(container(request))}
    )


RowId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


@router.get("/rollouts/{rollout_id}")
async def rollout(request: Request, session: Viewer, rollout_id: RowId) -> Response:
    return await _page(
        request, "rollout.html.j2", session, lambda: {"r": data.rollout(container(request), rollout_id)}
    )


@router.post("/rollouts/{rollout_id}/{action}")
async def rollout_command(
    request: Request,
    session: Viewer,
    fields: Form,
    rollout_id: RowId,
    action: Annotated[str, PathParam(max_length=16)],
) -> Response:
    c = container(request)
    return await _change(
        request,
        session,
        fields,
        Scope.WRITE,
        f"/rollouts/{rollout_id}",
        lambda: data.rollout_command(
            c, rollout_id, action, session.token.name, fields.get("reason", ""), fields.get("prerequisite")
        ),
    )


@router.get("/flags")
async def flags(request: Request, session: Viewer, q: Annotated[str, Query(max_length=200)] = "") -> Response:
    return await _page(request, "flags.html.j2", session, lambda: data.flags(container(request), q))


@router.get("/segments")
async def segments(
    request: Request, session: Viewer, env: Annotated[str, Query(max_length=128)] = ""
) -> Response:
    return await _page(request, "segments.html.j2", session, lambda: data.segments(container(request), env))


FlagKey = Annotated[str, PathParam(max_length=128)]


@router.get("/flags/{key}")
async def flag(
    request: Request,
    session: Viewer,
    key: FlagKey,
    env: Annotated[str | None, Query(max_length=128)] = None,
    targeting_key: Annotated[str | None, Query(max_length=500)] = None,
    attributes: Annotated[str, Query(max_length=10_000)] = "",
) -> Response:
    c = container(request)
    base = str(request.base_url)

    def build() -> dict[str, Any]:
        f = data.flag(c, key, env, base)
        tested = None
        if targeting_key is not None:
            try:
                tested = data.evaluate(c, key, f["environment"], targeting_key, attributes)
            except InvalidInput as exc:
                tested = {"error": exc.message, "targeting_key": targeting_key, "attributes": attributes}
        return {"f": f, "tested": tested}

    return await _page(request, "flag.html.j2", session, build)


@router.post("/flags/{key}/environments/{environment}/{change}")
async def change_flag(
    request: Request,
    session: Viewer,
    fields: Form,
    key: FlagKey,
    environment: Annotated[str, PathParam(max_length=128)],
    change: Annotated[str, PathParam(max_length=16)],
) -> Response:
    c = container(request)
    return await _change(
        request,
        session,
        fields,
        Scope.WRITE,
        f"/flags/{quote(key)}?env={quote(environment)}",
        lambda: data.change_flag(c, key, environment, change, fields, session.token.name),
    )


@router.post("/scheduled-changes/{change_id}/cancel")
async def cancel_scheduled_change(
    request: Request, session: Viewer, fields: Form, change_id: RowId
) -> Response:
    c = container(request)
    scheduled = await run_in_threadpool(c.scheduled.change, change_id)
    return await _change(
        request,
        session,
        fields,
        Scope.WRITE,
        f"/flags/{quote(scheduled.flag)}?env={quote(scheduled.environment)}",
        lambda: data.cancel_scheduled_change(c, change_id, fields, session.token.name),
    )


@router.get("/alerts")
async def alerts(request: Request, session: Viewer) -> Response:
    return await _page(request, "alerts.html.j2", session, lambda: data.alerts(container(request)))


@router.get("/deliveries")
async def deliveries(
    request: Request,
    session: Viewer,
    status: Annotated[str, Query(pattern="^(|failing|pending|delivered)$")] = "",
) -> Response:
    return await _page(
        request, "deliveries.html.j2", session, lambda: data.deliveries(container(request), status)
    )


@router.get("/reports")
async def reports(request: Request, session: Viewer) -> Response:
    return await _page(request, "reports.html.j2", session, lambda: data.reports(container(request)))


ReportKind = Annotated[str, PathParam(pattern="^(daily|support|weekly|completion)$")]
TimeZone = Annotated[str, Query(max_length=64)]


@router.get("/reports/{rollout_id}/{kind}")
async def report(
    request: Request, session: Viewer, rollout_id: RowId, kind: ReportKind, tz: TimeZone = "UTC"
) -> Response:
    return await _page(
        request,
        "report.html.j2",
        session,
        lambda: {
            "rollout_id": rollout_id,
            "kind": kind,
            "tz": tz,
            "kinds": data.reports(container(request))["kinds"],
        },
    )


@router.get("/reports/{rollout_id}/{kind}/document")
async def report_document(
    request: Request, session: Viewer, rollout_id: RowId, kind: ReportKind, tz: TimeZone = "UTC"
) -> Response:
    """The report's own self-contained HTML, framed by the report page: its inline styles are allowed here
    and scripts nowhere."""
    document = await run_in_threadpool(data.report_document, container(request), kind, rollout_id, tz)
    return HTMLResponse(
        document,
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            "frame-ancestors 'self'",
            "X-Frame-Options": "SAMEORIGIN",
            "Cache-Control": "no-store",
        },
    )


@router.get("/audit")
async def audit(
    request: Request,
    session: Viewer,
    target: Annotated[str, Query(max_length=300)] = "",
    environment: Annotated[str, Query(max_length=128)] = "",
    actor: Annotated[str, Query(max_length=200)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    before: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    filters = {
        "target": target,
        "environment": environment,
        "actor": actor,
        "action": action,
        "before": before,
    }
    return await _page(request, "audit.html.j2", session, lambda: data.audit(container(request), filters))


def _admin(session: Session) -> None:
    if not session.can(Scope.ADMIN):
        raise Forbidden("tokens are managed with an admin token")


@router.get("/tokens")
async def tokens(request: Request, session: Viewer) -> Response:
    _admin(session)
    return await _page(
        request, "tokens.html.j2", session, lambda: {**data.tokens(container(request)), "created": None}
    )


@router.post("/tokens")
async def create_token(request: Request, session: Viewer, fields: Form) -> Response:
    check_csrf(request, session, fields, Scope.ADMIN)
    c = container(request)
    try:
        created = await run_in_threadpool(data.create_token, c, fields, session.token.name)
    except InvalidInput as exc:
        return _back(request, "/tokens", "error", f"No token created: {exc.message}")
    # The secret is in this answer and nowhere else: not in a redirect, not in a cache.
    response = await _page(
        request, "tokens.html.j2", session, lambda: {**data.tokens(c), "created": created}, 201
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(
    request: Request, session: Viewer, fields: Form, token_id: Annotated[str, PathParam(max_length=64)]
) -> Response:
    c = container(request)
    return await _change(
        request,
        session,
        fields,
        Scope.ADMIN,
        "/tokens",
        lambda: data.revoke_token(c, token_id, session.token.name),
    )


@router.get("/live")
async def live(request: Request, session: Viewer) -> Response:
    return live_stream(request, request.cookies.get(SESSION_COOKIE, ""), session.token.id)
