"""The listing API's commands: ``POST /commands/{command_type}``, one route per contract command.

The body is exactly the contract's data (``schemas/events/<type>.json``), handled by the same
handlers as the Kafka consumer, so ``command_id`` makes a command idempotent across both channels.
200 accepted (the events it caused) / 409 rejected (rule id, Swedish and English) / 422 invalid /
403 not your unit / 404 no such command type.
"""
from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse

from flk.events.contracts import ContractViolation, contracts
from flk.security.access import REGION_WIDE, UNIT_STAFF
from flk.security.audit import AuditRecord
from flk.security.fastapi import AccessGuard, access_guard
from flk.security.tokens import Principal, Role
from services.listing.service_layer.dispatch import handle_message
from services.listing.service_layer.handlers import COMMAND_HANDLERS, InvalidMessage, Message, Outcome

router = APIRouter()

#: commands a patient may send about themselves (the 1177 e-service)
PATIENT_COMMANDS = frozenset({"listing.request.v1", "listing.end.v1", "fast_lakarkontakt.decline.v1"})
#: commands a guardian sends about their child with their own patient token: the token's key must be
#: the command's ``guardian_key`` (whether they are the child's guardian is the population register's
#: fact, checked by the rule: P3 ``consent_by_non_guardian``)
GUARDIAN_COMMANDS = frozenset({"listing.consent.v1"})


@cache
def command_body_schema(command_type: str) -> dict:
    """The contract schema with its shared $refs inlined (self-contained, for OpenAPI 3.1)."""
    c = contracts()

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                uri, _, pointer = ref.partition("#")
                target: Any = c.shared[uri if uri.startswith("https") else c.schema(command_type)["$id"].rsplit("/", 1)[0] + "/" + uri]
                for part in filter(None, pointer.split("/")):
                    target = target[part]
                merged = {**inline(copy.deepcopy(target)), **{k: inline(v) for k, v in node.items() if k != "$ref"}}
                return merged
            return {k: inline(v) for k, v in node.items() if k not in ("$schema", "$id", "x-cloudevents-type")}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(copy.deepcopy(c.schema(command_type)))


def may_command(principal: Principal, command_type: str, data: dict) -> bool:
    if principal.role in REGION_WIDE:
        return True
    if principal.role in UNIT_STAFF:
        return data.get("care_unit_id") in principal.units
    if principal.role is Role.PATIENT:
        if command_type in GUARDIAN_COMMANDS:
            return bool(principal.patient_key) and data.get("guardian_key") == principal.patient_key
        return command_type in PATIENT_COMMANDS and data.get("patient_key") == principal.patient_key
    return False


def _answer(outcome: Outcome) -> JSONResponse:
    body: dict[str, Any] = {"status": outcome.status, "command_id": outcome.message_id,
                            "replayed": outcome.replayed, "decided_under": outcome.decided_under}
    if outcome.status == "rejected":
        body["rejection"] = outcome.rejection
        return JSONResponse(status_code=409, content=body)
    body["events"] = outcome.events
    return JSONResponse(body)


async def run_command(command_type: str, request: Request, guard: AccessGuard) -> JSONResponse:
    try:
        data = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return JSONResponse(status_code=422, content={"error": "invalid_body", "detail": "the body is not JSON"})
    try:
        contracts().validate(command_type, data)
    except ContractViolation as exc:
        return JSONResponse(status_code=422, content={"error": "invalid_command", "detail": str(exc)})
    allowed = may_command(guard.principal, command_type, data)
    await guard.audit.record(AuditRecord(
        guard.principal, f"listing.command.{command_type}", "allowed" if allowed else "denied",
        unit_id=data.get("care_unit_id"), patient_key=data.get("patient_key"), request_id=guard.request_id))
    if not allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="your token does not allow this command for this unit")
    msg = Message(str(data["command_id"]), command_type, data, datetime.now(timezone.utc))
    try:
        outcome = await handle_message(msg, request.app.state.deps, request.app.state.probe,
                                       request.app.state.listing_settings.conflict_retries,
                                       COMMAND_HANDLERS)
    except InvalidMessage as exc:
        return JSONResponse(status_code=422, content={"error": "invalid_command", "detail": str(exc)})
    return _answer(outcome)


def add_command_route(command_type: str) -> None:
    async def command(request: Request, guard: Annotated[AccessGuard, Depends(access_guard)]) -> JSONResponse:
        return await run_command(command_type, request, guard)

    router.post(
        f"/commands/{command_type}", operation_id=f"command_{command_type.replace('.', '_')}",
        summary=f"Command {command_type}", tags=["commands"],
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": command_body_schema(command_type)}}}},
        responses={200: {"description": "accepted: the events it caused"},
                   409: {"description": "rejected by a rule: reason_code, rule_id, message_sv, message_en"},
                   422: {"description": "the body is not a valid command (what was wrong in detail)"},
                   403: {"description": "the token does not act for this unit"}},
    )(command)


for command_type in COMMAND_HANDLERS:
    add_command_route(command_type)


# after every known type's route: an unknown type gets 404 naming the known ones
@router.post("/commands/{command_type}", tags=["commands"], include_in_schema=False)
async def unknown_command(command_type: str) -> JSONResponse:
    return JSONResponse(status_code=404, content={
        "error": "unknown_command_type", "detail": f"known command types: {', '.join(COMMAND_HANDLERS)}"})
