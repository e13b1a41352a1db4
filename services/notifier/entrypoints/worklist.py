"""The unit worklist: server-rendered HTML in Swedish (works without JavaScript).

Routes (on the notifier's app, port 8083):
* ``GET /login``, ``POST /login`` — staff sign in at the region's identity provider when one is
  configured (services/notifier/entrypoints/sign_in.py), or, in development, paste a bearer token;
  the token is kept in an HttpOnly, SameSite=Strict cookie (an ``Authorization: Bearer`` header
  works as well).
* ``GET /`` — links to the worklists of the units the token names.
* ``GET /units/{unit}/worklist`` — the unit (by name) and its patients with open care gaps (name and
  personnummer for the unit's own staff, the pseudonymous key for protected identities and region
  roles), cause, RUB, SÄBO, days open, and the unit's doctors with free capacity (listing API), by
  name with the HSA-id. A count summary at the top; filters, sort order and paging are query
  parameters (``services.notifier.domain.worklist_view``) that every link and form keeps.
* ``POST /units/{unit}/worklist/assign`` — assign an FLK through the listing API with the user's
  token; the gap then resolves through listing.events.v1 -> gap detection.
* ``POST /logout``.

Forms carry a double-submit CSRF token (cookie == form field) when the cookie authenticates.
Every view and action is audit-logged (per patient shown on the page); another unit's staff get 404.
Patient identifiers never appear in a URL (forms post an opaque gap id), a log line or a label.
"""
from __future__ import annotations

import dataclasses
import logging
import secrets
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode
from zoneinfo import ZoneInfo

import jinja2
from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from flk.security.access import may_read_unit_patients
from flk.security.audit import AuditRecord
from flk.security.tokens import InvalidToken, Principal, verify_token_async
from flk.security.vault import IdentityVault
from services.notifier.adapters import worklist_store
from services.notifier.adapters.listing_client import (
    AssignAccepted, AssignRejected, ListingClient, ListingRefused, ListingUnavailable,
)
from services.notifier.domain.messages import CAUSE_TEXT
from services.notifier.domain.worklist import (
    assign_command, csrf_matches, doctors_with_free_capacity, may_reidentify, safe_next_path, worklist_rows,
)
from services.notifier.domain.worklist_view import (
    PAGE_SIZES, RUB_FILTERS, SABO_FILTERS, WorklistQuery, parse_query, select,
)
from services.notifier.settings import NotifierSettings

log = logging.getLogger(__name__)

SESSION_COOKIE = "flk_worklist_session"
CSRF_COOKIE = "flk_worklist_csrf"

ACTION_VIEW = "notifier.worklist.read"
ACTION_PATIENT_VIEW = "notifier.worklist.patient.view"
ACTION_ASSIGN = "notifier.worklist.assign"

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

LOGIN_ERRORS = {"utgangen": "Inloggningen gäller inte längre (token utgången eller ogiltig). Logga in igen."}

ASSIGN_OUTCOME_NOTICES = {
    "klar": ("ok", "Fast läkarkontakt tilldelad. Vårdluckan är stängd."),
    "mottagen": ("info", "Tilldelningen är godkänd av listningstjänsten. Vårdluckan stängs när händelsen "
                         "har behandlats – ladda om sidan om en stund."),
    "stangd": ("info", "Vårdluckan är redan stängd."),
}


def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("services.notifier.entrypoints", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
    )


class WorklistPages:
    """The worklist's collaborators; one per app (created in ``create_app``, no I/O)."""

    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings
        self.tz = ZoneInfo(settings.timezone)
        self.vault = IdentityVault(settings.platform.identity_vault_key.get_secret_value())
        self.env = _templates()
        self.listing: ListingClient | None = None  # opened in the lifespan

    # ---- plumbing ---------------------------------------------------------------------------

    def now(self, request: Request) -> datetime:
        clock = getattr(getattr(request.app.state, "runtime", None), "clock", None)
        return clock.now() if clock else datetime.now(timezone.utc)

    def secure_cookies(self, request: Request) -> bool:
        return self.settings.worklist_cookie_secure or request.url.scheme == "https"

    def page(self, request: Request, template: str, status: int = 200, principal: Principal | None = None,
             **context: Any) -> HTMLResponse:
        """Render with the CSRF token (created when the browser has none) and security headers."""
        csrf = request.cookies.get(CSRF_COOKIE)
        new_csrf = None if csrf else secrets.token_urlsafe(32)
        body = self.env.get_template(template).render(principal=principal, csrf_token=csrf or new_csrf, **context)
        response = HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
        if new_csrf:
            self.set_csrf_cookie(request, response, new_csrf)
        return response

    def set_csrf_cookie(self, request: Request, response: Response, value: str) -> None:
        response.set_cookie(CSRF_COOKIE, value, httponly=True, samesite="strict", secure=self.secure_cookies(request),
                            path="/")

    @staticmethod
    def redirect(url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)

    def to_login(self, request: Request, expired: bool = False) -> Response:
        """To the login form (``?fel=utgangen`` when the session's token no longer verifies: a
        fixed message, never text taken from the URL)."""
        path = request.url.path if request.method == "GET" else "/"
        if request.method == "GET" and request.url.query:  # the worklist's view (filters, page) survives login
            path = f"{path}?{request.url.query}"
        query = {"next": path} | ({"fel": "utgangen"} if expired else {})
        response = self.redirect(f"/login?{urlencode(query)}")
        if expired:
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @staticmethod
    def credentials(request: Request) -> tuple[str | None, str]:
        """(token, 'header' | 'cookie'); the header wins."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip(), "header"
        cookie = request.cookies.get(SESSION_COOKIE)
        return (cookie, "cookie") if cookie else (None, "")

    async def principal(self, token: str) -> Principal:
        return await verify_token_async(self.settings.platform, token)

    def login_page(self, request: Request, status: int = 200, next: str = "/", error: str | None = None) -> HTMLResponse:
        return self.page(request, "login.html", status, next=next, error=error,
                         provider_login=self.settings.worklist_sign_in_by_provider,
                         token_login=self.settings.worklist_token_login_enabled)

    @staticmethod
    def request_id(request: Request) -> str:
        return request.headers.get("x-request-id") or str(uuid.uuid4())

    async def audit(self, request: Request, records: list[AuditRecord]) -> None:
        await worklist_store.audit_many(request.app.state.db, records)

    def probe(self, request: Request, action: str, outcome: str) -> None:
        request.app.state.probe.worklist_request(action, outcome)

    # ---- the worklist page -----------------------------------------------------------------------

    async def deny(self, request: Request, principal: Principal, action: str, unit_id: str) -> HTMLResponse:
        await self.audit(request, [AuditRecord(principal, action, "denied", unit_id=unit_id,
                                               request_id=self.request_id(request))])
        self.probe(request, action, "denied")
        # 404, not 403: a unit must not learn about another unit's patients
        return self.page(request, "not_found.html", 404, principal,
                         message="Det finns ingen arbetslista för den här enheten bland dina enheter.")

    async def worklist(self, request: Request, principal: Principal, token: str, unit_id: str,
                       notices: list[tuple[str, str]], status: int = 200,
                       query: WorklistQuery | None = None) -> HTMLResponse:
        request_id = self.request_id(request)
        query = query or parse_query(request.query_params)
        reidentify = may_reidentify(principal, unit_id)
        now = self.now(request)
        async with request.app.state.db.acquire() as conn:
            gaps = await worklist_store.open_gaps_of_unit(conn, unit_id)
            routed_name = (await worklist_store.unit_names(conn, [unit_id])).get(unit_id)
            # filter, sort and page first: only the patients shown are re-identified and audit-logged
            view = select(worklist_rows(gaps, {}, False, now, self.tz), query)
            shown = {row.gap_id for row in view.rows}
            shown_gaps = [g for g in gaps if g.gap_id in shown]
            identities = await worklist_store.identities(conn, self.vault, (g.patient_key for g in shown_gaps)) \
                if reidentify else {}
        rows = {r.gap_id: r for r in worklist_rows(shown_gaps, identities, reidentify, now, self.tz)}
        view = dataclasses.replace(view, rows=[rows[r.gap_id] for r in view.rows])
        await self.audit(request, [
            AuditRecord(principal, ACTION_VIEW, "allowed", unit_id=unit_id, purpose="vard", request_id=request_id),
            *(AuditRecord(principal, ACTION_PATIENT_VIEW, "allowed", unit_id=unit_id, patient_key=g.patient_key,
                          purpose="vard", request_id=request_id) for g in shown_gaps),
        ])
        doctors, lists_error, unit_name = [], None, None
        try:
            assert self.listing is not None
            unit_name, lists = await self.listing.unit(unit_id, token)
            doctors = doctors_with_free_capacity(lists)
        except ListingUnavailable:
            lists_error = "Listningstjänsten svarar inte just nu: läkarlistor och tilldelning går inte att visa."
        except ListingRefused as exc:
            lists_error = f"Listningstjänsten visar inte enhetens listor för dig (svar {exc.status})."
        self.probe(request, ACTION_VIEW, "allowed")
        return self.page(
            request, "worklist.html", status, principal, unit_id=unit_id, unit_name=unit_name or routed_name,
            view=view, rows=view.rows, doctors=doctors, lists_error=lists_error,
            notices=notices + [("error", p) for p in query.problems], form_nonce=secrets.token_urlsafe(16),
            as_of=now.astimezone(self.tz).strftime("%Y-%m-%d %H:%M"),
            rub_filters=RUB_FILTERS, sabo_filters=SABO_FILTERS, page_sizes=PAGE_SIZES,
            causes=CAUSE_TEXT, return_view=urlencode(query.params()),
        )


@dataclasses.dataclass(frozen=True)
class SignedIn:
    """Who is looking at a page: the verified principal, their token (passed on to the listing API)
    and where it came from (``header`` or ``cookie``: only a cookie needs the CSRF check)."""

    principal: Principal
    token: str
    source: str


class SignInRequired(Exception):
    """Not signed in, or the token no longer verifies: answer with ``response`` (the login form)."""

    def __init__(self, response: Response) -> None:
        super().__init__("sign-in required")
        self.response = response


def install_worklist(app: FastAPI, settings: NotifierSettings) -> WorklistPages:
    """Add the worklist's routes; the caller's lifespan opens/closes ``pages.listing``."""
    pages = WorklistPages(settings)

    async def signed_in(request: Request) -> SignedIn:
        """Every page's sign-in check, one dependency: no token -> the login form; a token that no
        longer verifies -> the login form saying so (a bearer header: 401 with the reason)."""
        token, source = pages.credentials(request)
        if token is None:
            raise SignInRequired(pages.to_login(request))
        try:
            principal = await pages.principal(token)
        except InvalidToken as exc:
            if source == "header":
                raise SignInRequired(pages.login_page(request, 401, next=request.url.path,
                                                      error=f"Token kunde inte verifieras ({exc}).")) from None
            raise SignInRequired(pages.to_login(request, expired=True)) from None
        return SignedIn(principal, token, source)

    async def sign_in_required(request: Request, exc: SignInRequired) -> Response:
        return exc.response

    app.add_exception_handler(SignInRequired, sign_in_required)
    # (a default, not Annotated[...]: this module's annotations are strings, resolved in its globals)
    page_user = Depends(signed_in)
    app.state.worklist = pages

    @app.get("/login", include_in_schema=False)
    async def login_form(request: Request, next: str = "/", fel: str | None = None) -> Response:
        error = LOGIN_ERRORS.get(fel or "")
        return pages.login_page(request, next=safe_next_path(next, "/"), error=error)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request, token: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
                    next: Annotated[str, Form()] = "/") -> Response:
        target = safe_next_path(next, "/")
        if not settings.worklist_token_login_enabled:
            return pages.login_page(request, 404, next=target)
        if not csrf_matches(request.cookies.get(CSRF_COOKIE), csrf_token):
            pages.probe(request, "notifier.worklist.login", "csrf_failed")
            return pages.login_page(request, 400, next=target,
                                    error="Inloggningsformuläret kunde inte verifieras. Försök igen.")
        try:
            principal = await pages.principal(token.strip())
        except InvalidToken as exc:
            pages.probe(request, "notifier.worklist.login", "invalid_token")
            return pages.login_page(request, 401, next=target, error=f"Token kunde inte verifieras ({exc}).")
        response = pages.redirect(target)
        response.set_cookie(SESSION_COOKIE, token.strip(), httponly=True, samesite="strict",
                            secure=pages.secure_cookies(request), path="/")
        pages.set_csrf_cookie(request, response, secrets.token_urlsafe(32))  # a new session, a new CSRF token
        pages.probe(request, "notifier.worklist.login", "ok")
        log.info("worklist login by %s (%s)", principal.subject, principal.role.value)
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
        response = pages.redirect("/login")
        if csrf_matches(request.cookies.get(CSRF_COOKIE), csrf_token):
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/", include_in_schema=False)
    async def home(request: Request, who: SignedIn = page_user) -> Response:
        principal = who.principal
        units = sorted(principal.units)
        if len(units) == 1 and request.url.path == "/":
            return pages.redirect(f"/units/{quote(units[0], safe='')}/worklist")
        async with request.app.state.db.acquire() as conn:
            names = await worklist_store.unit_names(conn, units)
        return pages.page(request, "units.html", principal=principal, units=units, unit_names=names)

    @app.get("/units/{unit_id}/worklist", include_in_schema=False)
    async def worklist(request: Request, unit_id: str, tilldelning: str | None = None,
                       who: SignedIn = page_user) -> Response:
        principal, token = who.principal, who.token
        if not may_read_unit_patients(principal, unit_id):
            return await pages.deny(request, principal, ACTION_VIEW, unit_id)
        notices = [ASSIGN_OUTCOME_NOTICES[tilldelning]] if tilldelning in ASSIGN_OUTCOME_NOTICES else []
        return await pages.worklist(request, principal, token, unit_id, notices)

    @app.post("/units/{unit_id}/worklist/assign", include_in_schema=False)
    async def assign(request: Request, unit_id: str, gap_id: Annotated[str, Form()] = "",
                     list_id: Annotated[str, Form()] = "", form_nonce: Annotated[str, Form()] = "",
                     csrf_token: Annotated[str, Form()] = "", vy: Annotated[str, Form()] = "",
                     who: SignedIn = page_user) -> Response:
        principal, token, source = who.principal, who.token, who.source
        if source == "cookie" and not csrf_matches(request.cookies.get(CSRF_COOKIE), csrf_token):
            pages.probe(request, ACTION_ASSIGN, "csrf_failed")
            return pages.page(request, "not_found.html", 403, principal,
                              message="Formuläret kunde inte verifieras. Ladda om arbetslistan och försök igen.")
        if not may_read_unit_patients(principal, unit_id):
            return await pages.deny(request, principal, ACTION_ASSIGN, unit_id)
        # the page's view (filters, sort, page) survives the round trip, rebuilt from known values only
        view = parse_query(dict(parse_qsl(vy[:2000])))
        view = dataclasses.replace(view, problems=())
        back = f"/units/{quote(unit_id, safe='')}/worklist"
        try:
            gap_uuid = uuid.UUID(gap_id)
        except ValueError:
            return await pages.worklist(request, principal, token, unit_id,
                                        [("error", "Begäran saknade en giltig vårdlucka.")], 422, view)
        if not list_id or not form_nonce:
            return await pages.worklist(request, principal, token, unit_id,
                                        [("error", "Välj en läkare att tilldela.")], 422, view)
        async with request.app.state.db.acquire() as conn:
            gap = await worklist_store.open_gap(conn, unit_id, gap_uuid)
        if gap is None:
            pages.probe(request, ACTION_ASSIGN, "gap_closed")
            return pages.redirect(f"{back}?{urlencode(view.params() | {'tilldelning': 'stangd'})}")
        if not gap.assignable:
            pages.probe(request, ACTION_ASSIGN, "not_assignable")
            return await pages.worklist(request, principal, token, unit_id, [
                ("error", "Vårdluckan gäller fast vårdkontakt: den stängs när verksamhetschefen utser en fast "
                          "vårdkontakt, inte genom att tilldela en fast läkarkontakt.")], 409, view)

        async def failed(status: int, message: str, outcome: str) -> Response:
            pages.probe(request, ACTION_ASSIGN, outcome)
            return await pages.worklist(request, principal, token, unit_id, [("error", message)], status, view)

        try:
            assert pages.listing is not None
            lists = await pages.listing.unit_lists(unit_id, token)
            doctor = next((d for d in lists if d.list_id == list_id and d.kind == "doctor"), None)
            if doctor is None:
                return await failed(422, "Den valda listan är ingen läkarlista på enheten.", "unknown_list")
            await pages.audit(request, [AuditRecord(principal, ACTION_ASSIGN, "allowed", unit_id=unit_id,
                                                    patient_key=gap.patient_key, purpose="vard",
                                                    request_id=pages.request_id(request))])
            command = assign_command(gap, doctor, principal.subject, form_nonce, pages.now(request), pages.tz)
            result = await pages.listing.assign(command, token)
        except ListingUnavailable:
            return await failed(503, "Listningstjänsten svarar inte just nu. Försök igen om en stund.", "unavailable")
        except ListingRefused as exc:
            return await failed(exc.status if exc.status in (401, 403, 404, 422) else 502,
                                f"Listningstjänsten tog inte emot tilldelningen (svar {exc.status}): {exc.detail}",
                                f"refused_{exc.status}")
        if isinstance(result, AssignRejected):
            return await failed(409, f"Tilldelningen avslogs: {result.message_sv}", "rejected")
        assert isinstance(result, AssignAccepted)
        resolved = await worklist_store.wait_until_resolved(request.app.state.db, gap.gap_id,
                                                            settings.worklist_assign_wait_s)
        pages.probe(request, ACTION_ASSIGN, "accepted")
        outcome = "klar" if resolved else "mottagen"
        return pages.redirect(f"{back}?{urlencode(view.params() | {'tilldelning': outcome})}")

    return pages
