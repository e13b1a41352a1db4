"""The listing service's REST API as the worklist uses it, with the user's own bearer token
(the listing service decides access and audits on its side).

``GET /units/{unit}/lists`` and ``POST /commands/fast_lakarkontakt.assign.v1`` (the listing API in
services/listing/entrypoints/, its OpenAPI at /docs; the command body is schemas/events/fast_lakarkontakt.assign.v1.json).
Errors never carry the request body (it names a patient key).
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import httpx

from services.notifier.domain.worklist import DoctorList

ASSIGN_COMMAND_TYPE = "fast_lakarkontakt.assign.v1"


class ListingUnavailable(Exception):
    """The listing service did not answer, or answered 5xx (safe to show: no patient data)."""


@dataclass(frozen=True)
class ListingRefused(Exception):
    """401/403/404/422 from the listing service: the user may not do this, or the body was wrong."""

    status: int
    detail: str

    def __str__(self) -> str:
        return f"listing API answered {self.status}: {self.detail}"


@dataclass(frozen=True)
class AssignAccepted:
    events: list


@dataclass(frozen=True)
class AssignRejected:
    """409: a rule refused the assignment; ``message_sv`` is for the user."""

    reason_code: str
    rule_id: str
    message_sv: str


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        detail = body.get("detail", body.get("error", body))
        if isinstance(detail, list):  # FastAPI's 422: [{"loc": [...], "msg": ...}]
            return "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail
                             if isinstance(d, dict))[:300]
        return str(detail)[:300]
    return str(body)[:300]


class ListingClient:
    def __init__(self, base_url: str, timeout_s: float = 10.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, token: str, **kwargs) -> httpx.Response:
        try:
            response = await self._http.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
        except httpx.HTTPError as exc:
            raise ListingUnavailable(f"the listing service did not answer ({type(exc).__name__})") from None
        if response.status_code >= 500:
            raise ListingUnavailable(f"the listing service answered {response.status_code}")
        return response

    async def unit_lists(self, unit_id: str, token: str) -> list[DoctorList]:
        return (await self.unit(unit_id, token))[1]

    async def unit(self, unit_id: str, token: str) -> tuple[str | None, list[DoctorList]]:
        """The unit's name in the listing service's unit register (None if not given) and its lists."""
        response = await self._call("GET", f"/units/{quote(unit_id, safe='')}/lists", token)
        if response.status_code != 200:
            raise ListingRefused(response.status_code, _detail(response))
        body = response.json()
        items = body.get("lists", []) if isinstance(body, dict) else body
        name = body.get("name") if isinstance(body, dict) else None
        lists = []
        for item in items:
            try:
                lists.append(DoctorList(
                    list_id=str(item["list_id"]), kind=str(item["kind"]), practitioner_id=item.get("practitioner_id"),
                    display_name=str(item.get("display_name") or item["list_id"]), size=int(item.get("size") or 0),
                    # a fictive list has no capacity (null)
                    capacity=int(item.get("capacity") or 0), free_capacity=int(item.get("free_capacity") or 0),
                    active=bool(item.get("role_active", True)),
                ))
            except (KeyError, TypeError, ValueError):
                raise ListingUnavailable("the listing service's list description was not understood") from None
        return (str(name) if isinstance(name, str) and name.strip() else None), lists

    async def assign(self, command: dict, token: str) -> AssignAccepted | AssignRejected:
        response = await self._call("POST", f"/commands/{ASSIGN_COMMAND_TYPE}", token, json=command)
        if response.status_code == 200:
            return AssignAccepted(response.json().get("events", []))
        if response.status_code == 409:
            rejection = (response.json() or {}).get("rejection") or {}
            return AssignRejected(str(rejection.get("reason_code", "")), str(rejection.get("rule_id", "")),
                                  str(rejection.get("message_sv") or "Listningstjänsten avvisade tilldelningen."))
        raise ListingRefused(response.status_code, _detail(response))
