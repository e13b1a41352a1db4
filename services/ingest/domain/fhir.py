"""FHIR R4 resources in, validated with `fhir.resources` (its R4B models: R4B changed no element this
adapter reads — Encounter, Patient, Practitioner, PractitionerRole, Organization and Bundle are R4's),
and every problem as an :class:`Issue` naming its FHIRPath location.

Pure: no I/O. The parsed models are plain data.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

#: resource types this adapter reads; anything else in a bundle is refused (not-supported)
SUPPORTED = ("Encounter", "Patient", "Practitioner", "PractitionerRole", "Organization")


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue: where (FHIRPath), what, and its issue type code."""

    expression: str
    diagnostics: str
    code: str = "invalid"  # http://hl7.org/fhir/issue-type: invalid, structure, required, value, ...
    severity: str = "error"

    def at(self, prefix: str) -> "Issue":
        """The same issue inside a bundle entry: ``Encounter.x`` -> ``Bundle.entry[3].resource.x``."""
        head, _, rest = self.expression.partition(".")
        expression = prefix + ("." + rest if rest else "") if head[:1].isupper() else prefix + "." + self.expression
        return Issue(expression, self.diagnostics, self.code, self.severity)


def _model_class(resource_type: str):
    # imported on first use: the models are many modules (no import-time cost for `flk --help`)
    if resource_type == "Encounter":
        from fhir.resources.R4B.encounter import Encounter as cls
    elif resource_type == "Patient":
        from fhir.resources.R4B.patient import Patient as cls
    elif resource_type == "Practitioner":
        from fhir.resources.R4B.practitioner import Practitioner as cls
    elif resource_type == "PractitionerRole":
        from fhir.resources.R4B.practitionerrole import PractitionerRole as cls
    elif resource_type == "Organization":
        from fhir.resources.R4B.organization import Organization as cls
    elif resource_type == "Bundle":
        from fhir.resources.R4B.bundle import Bundle as cls
    else:  # pragma: no cover - callers check SUPPORTED
        raise KeyError(resource_type)
    return cls


def fhirpath(resource_type: str, loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a FHIRPath: ``('participant', 0, 'individual')`` ->
    ``Encounter.participant[0].individual``. pydantic's own steps (``root``, validator names) are dropped."""
    path = resource_type
    for step in loc:
        if isinstance(step, int):
            path += f"[{step}]"
        elif isinstance(step, str) and step.replace("_", "").isalnum() and step not in ("root", "__root__"):
            path += "." + step
    return path


def _error_text(error: dict) -> str:
    # pydantic's message, never the input value (it may be a personnummer)
    message = str(error.get("msg", "invalid"))
    return message.replace("Value error, ", "")


def parse_resource(raw: Any, *, allowed: tuple[str, ...] = SUPPORTED) -> tuple[Any | None, list[Issue]]:
    """The validated model of a resource (JSON object), or None and the issues."""
    if not isinstance(raw, dict):
        return None, [Issue("Resource", "a resource must be a JSON object", "structure")]
    resource_type = raw.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        return None, [Issue("Resource.resourceType", "resourceType is missing", "required")]
    if resource_type not in allowed:
        return None, [Issue(f"{_safe_type(resource_type)}", f"resource type {_safe_type(resource_type)} is not "
                            f"accepted here (accepted: {', '.join(allowed)})", "not-supported")]
    try:
        return _model_class(resource_type).model_validate(raw), []
    except ValidationError as exc:
        issues = []
        for error in exc.errors(include_url=False, include_input=False):
            kind = "required" if error.get("type") == "missing" else "structure" if error.get(
                "type") == "extra_forbidden" else "value"
            issues.append(Issue(fhirpath(resource_type, tuple(error.get("loc", ()))), _error_text(error), kind))
        return None, issues or [Issue(resource_type, "not a valid resource", "structure")]
    except (ValueError, TypeError, RecursionError) as exc:  # a validator that raised outside pydantic
        return None, [Issue(resource_type, f"not a valid resource ({type(exc).__name__})", "structure")]


def _safe_type(value: str) -> str:
    """A resourceType for an error message: letters only, bounded (the caller's text is echoed)."""
    return "".join(c for c in value if c.isalpha())[:40] or "Resource"


def content_hash(raw: dict, key: bytes) -> str:
    """A keyed digest (HMAC-SHA256 with the pseudonymisation key) of the resource without ``meta`` (the
    sender's bookkeeping): the same resource sent again has the same digest. Keyed, because the resource
    holds a person id: without the key the digest cannot be tested against guessed resources."""
    body = {k: v for k, v in raw.items() if k != "meta"}
    return hmac.new(key, orjson.dumps(body, option=orjson.OPT_SORT_KEYS), hashlib.sha256).hexdigest()
