"""A request's resources -> per entry: an Encounter version to apply, an identity-only resource, or its
issues. Pure (no I/O): the service layer applies what this returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.ingest.domain.fhir import Issue, content_hash, parse_resource
from services.ingest.domain.identifiers import PatientKeyMaker
from services.ingest.domain.mapping import EncounterVersion, References, map_encounter

BUNDLE_TYPES = ("batch", "transaction")


@dataclass
class Entry:
    index: int  # position in the bundle (0 for a single resource)
    path: str  # FHIRPath of the resource: 'Encounter' or 'Bundle.entry[3].resource'
    resource_type: str | None = None
    version: EncounterVersion | None = None  # an Encounter that maps
    issues: list[Issue] = field(default_factory=list)
    parse_failed: bool = False  # the resource could not be read (400), not only mapped (422)

    @property
    def identity_only(self) -> bool:
        return not self.issues and self.version is None


@dataclass
class ReadRequest:
    kind: str  # 'encounter', 'batch' or 'transaction'
    entries: list[Entry]
    issues: list[Issue] = field(default_factory=list)  # of the request as a whole (nothing applied)
    status: int = 200  # of the request as a whole when `issues`

    @property
    def all_issues(self) -> list[Issue]:
        return self.issues + [i for e in self.entries for i in e.issues]


def read_encounter(raw: Any, pseudonym_key: bytes, expected_id: str | None = None) -> ReadRequest:
    keys = PatientKeyMaker(pseudonym_key)
    model, issues = parse_resource(raw, allowed=("Encounter",))
    entry = Entry(0, "Encounter", "Encounter")
    if model is None:
        entry.issues, entry.parse_failed = issues, True
        return ReadRequest("encounter", [entry])
    if expected_id is not None and model.id != expected_id:
        entry.issues = [Issue("Encounter.id", "the id in the body differs from the id in the URL", "invalid")]
        return ReadRequest("encounter", [entry])
    entry.version, entry.issues = map_encounter(model, content_hash(raw, pseudonym_key), keys, References())
    return ReadRequest("encounter", [entry])


def read_bundle(raw: Any, pseudonym_key: bytes, max_entries: int) -> ReadRequest:
    keys = PatientKeyMaker(pseudonym_key)
    if not isinstance(raw, dict) or raw.get("resourceType") != "Bundle":
        return ReadRequest("bundle", [], [Issue("Bundle", "the body must be a Bundle (or POST an Encounter to "
                                               "/fhir/Encounter)", "structure")], 400)
    kind = raw.get("type")
    if kind not in BUNDLE_TYPES:
        return ReadRequest("bundle", [], [Issue("Bundle.type", "the Bundle's type must be batch or transaction",
                                                "value")], 400)
    entries_raw = raw.get("entry", [])
    if not isinstance(entries_raw, list):
        return ReadRequest(kind, [], [Issue("Bundle.entry", "entry must be an array", "structure")], 400)
    if len(entries_raw) > max_entries:
        return ReadRequest(kind, [], [Issue("Bundle.entry", f"{len(entries_raw)} entries; at most {max_entries} "
                                            "are accepted in one Bundle (split it)", "too-costly")], 413)
    shell = {k: v for k, v in raw.items() if k != "entry"}
    _, shell_issues = parse_resource({**shell, "entry": [_shell_entry(e) for e in entries_raw]}, allowed=("Bundle",))
    entries: list[Entry] = []
    parsed: list[tuple[Entry, Any, dict]] = []
    refs = References()
    for i, item in enumerate(entries_raw):
        path = f"Bundle.entry[{i}].resource"
        entry = Entry(i, path)
        entries.append(entry)
        entry.issues += [s for s in shell_issues if s.expression.startswith(f"Bundle.entry[{i}]")]
        if not isinstance(item, dict) or not isinstance(item.get("resource"), dict):
            entry.issues.append(Issue(f"Bundle.entry[{i}]", "the entry has no resource", "required"))
            entry.parse_failed = True
            continue
        request = item.get("request")
        if isinstance(request, dict) and request.get("method") not in ("POST", "PUT"):
            entry.issues.append(Issue(f"Bundle.entry[{i}].request.method", "only POST and PUT entries are accepted",
                                      "not-supported"))
        resource_raw = item["resource"]
        model, issues = parse_resource(resource_raw)
        entry.resource_type = resource_raw.get("resourceType") if isinstance(resource_raw.get("resourceType"), str) else None
        if model is None:
            entry.issues += [issue.at(path) for issue in issues]
            entry.parse_failed = True
            continue
        full_url = item.get("fullUrl") if isinstance(item.get("fullUrl"), str) else None
        refs.add(model, path, full_url)
        parsed.append((entry, model, resource_raw))
    whole = [s for s in shell_issues if not s.expression.startswith("Bundle.entry[")]
    for entry, model, resource_raw in parsed:
        if entry.resource_type != "Encounter" or entry.issues:
            continue
        entry.version, issues = map_encounter(model, content_hash(resource_raw, pseudonym_key), keys, refs,
                                              entry.path)
        entry.issues += issues
    return ReadRequest(kind, entries, whole, 400 if whole else 200)


def _shell_entry(item: Any) -> Any:
    """An entry without its resource (validated on its own, per entry, for per-entry issues)."""
    return {k: v for k, v in item.items() if k != "resource"} if isinstance(item, dict) else item
