"""A small local HTTP server standing in for the listing service's REST API (the listing API, same
answer shapes as services/listing/entrypoints/api.py) in the notifier's worklist integration
tests, where scripted answers (409, down) are needed; the browser test runs the real service: ``GET /units/{unit}/lists`` and
``POST /commands/fast_lakarkontakt.assign.v1``.

It checks what the real service checks at its edge (a valid platform bearer token for the unit,
the command body against the contract) and, on acceptance, publishes
``fast_lakarkontakt.assigned.v1`` on listing.events.v1 like the real service's outbox relay, so
gap detection sees the assignment through Kafka. Answers can be scripted (a 409 rejection).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from flk.events.contracts import ContractViolation, contracts
from flk.events.envelope import make_record
from flk.events.producer import publish
from flk.security.tokens import InvalidToken, Principal, verify_token
from flk.settings import PlatformSettings


def a_doctor_list(practitioner_id: str, name: str, *, size: int = 900, capacity: int = 1100) -> dict:
    return {"list_id": f"list-{practitioner_id}", "kind": "doctor", "practitioner_id": practitioner_id,
            "display_name": name, "role_active": True, "size": size, "capacity": capacity,
            "free_capacity": capacity - size, "rub_weighted_load": 1.0}


def a_fictive_list(unit_id: str) -> dict:
    return {"list_id": f"fictive-{unit_id}", "kind": "fictive", "practitioner_id": None,
            "display_name": "VC Centrum Dr X", "role_active": False, "size": 300, "capacity": None,
            "free_capacity": None, "rub_weighted_load": None}


@dataclass
class ListingStandIn:
    platform: PlatformSettings
    producer: Any
    port: int
    lists: dict[str, list[dict]] = field(default_factory=dict)
    unit_names: dict[str, str] = field(default_factory=dict)  # the unit register's names (answered as "name")
    rejection: dict | None = None  # when set, assignments answer 409 with it
    commands: list[dict] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    _accepted: dict[str, dict] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _principal(self, request: web.Request) -> Principal:
        header = request.headers.get("Authorization", "")
        self.authorizations.append(header)
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            raise web.HTTPUnauthorized(text="missing bearer token")
        try:
            return verify_token(self.platform, token)
        except InvalidToken as exc:
            raise web.HTTPUnauthorized(text=str(exc)) from None

    async def _unit_lists(self, request: web.Request) -> web.Response:
        unit_id = request.match_info["unit_id"]
        principal = self._principal(request)
        if unit_id not in principal.units:
            return web.json_response({"detail": "not your unit"}, status=404)
        body = {"care_unit_id": unit_id, "lists": self.lists.get(unit_id, [])}
        if unit_id in self.unit_names:
            body["name"] = self.unit_names[unit_id]
        return web.json_response(body)

    async def _assign(self, request: web.Request) -> web.Response:
        principal = self._principal(request)
        body = await request.json()
        try:
            contracts().validate("fast_lakarkontakt.assign.v1", body)
        except ContractViolation as exc:
            return web.json_response({"detail": str(exc)}, status=422)
        self.commands.append(body)
        if body["care_unit_id"] not in principal.units:
            return web.json_response({"detail": "not your unit"}, status=404)
        if self.rejection is not None:
            return web.json_response({"status": "rejected", "rejection": self.rejection}, status=409)
        if body["command_id"] in self._accepted:  # idempotent on command_id
            return web.json_response(self._accepted[body["command_id"]])
        chosen = next(x for x in self.lists.get(body["care_unit_id"], []) if x["list_id"] == body["list_id"])
        event = {
            "assignment_id": str(uuid.uuid5(uuid.NAMESPACE_URL, body["command_id"])),
            "patient_key": body["patient_key"], "care_unit_id": body["care_unit_id"], "list_id": chosen["list_id"],
            "list_kind": chosen["kind"], "practitioner_id": chosen["practitioner_id"],
            "coordinating": bool(body.get("coordinating", True)), "assigned_on": body["effective_date"],
        }
        await publish(self.producer, make_record("fast_lakarkontakt.assigned.v1", event, source="urn:flk:listing"),
                      self.platform.topic_prefix)
        answer = {"status": "accepted", "events": [{"type": "fast_lakarkontakt.assigned.v1", "data": event}]}
        self._accepted[body["command_id"]] = answer
        return web.json_response(answer)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/units/{unit_id}/lists", self._unit_lists)
        app.router.add_post("/commands/fast_lakarkontakt.assign.v1", self._assign)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
