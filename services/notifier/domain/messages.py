"""Alert texts in Swedish: email (text + HTML) and a Teams Workflows Adaptive Card (pure).

Email and Teams are not approved channels for patient data (docs/domain.md §6, P2). A message
therefore carries only the unit's name, what the patients lack (a fast läkarkontakt, or — where
the region requires one for RUB high-need patients — a fast vårdkontakt), counts by kind, cause
and by RUB/SÄBO, the age of the oldest
gap and a link to the unit's worklist (which requires login). The renderers take a
:class:`UnitGapSummary`, which has no field for a patient key, name or personnummer; as a second
line of defence every rendered text is scanned by :func:`ensure_no_personal_identity_number`
and rendering fails (:class:`PatientIdentifierLeak`) rather than send something that looks like
a personnummer or samordningsnummer.
"""

from __future__ import annotations

import html
import json
import re

from stdnum import luhn
from dataclasses import dataclass
from typing import Any

from services.notifier.domain.alerts import Alert, AlertKind, UnitGapSummary
from services.notifier.domain.care_gaps import GapCause, GapKind

__all__ = [
    "ADAPTIVE_CARD_CONTENT_TYPE",
    "ADAPTIVE_CARD_SCHEMA",
    "CAUSE_TEXT",
    "KIND_TEXT",
    "PERSONAL_IDENTITY_NUMBER_PATTERN",
    "PatientIdentifierLeak",
    "RenderedEmail",
    "ensure_no_personal_identity_number",
    "render_email",
    "render_teams_card",
    "rub_text",
]

ADAPTIVE_CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
ADAPTIVE_CARD_VERSION = "1.4"

CAUSE_TEXT: dict[GapCause, str] = {
    GapCause.NEVER_ASSIGNED: "Har aldrig fått fast läkarkontakt",
    GapCause.LOCUM_LIST: "Endast på fiktiv lista (hyr-/stafettläkare)",
    GapCause.DOCTOR_LEFT: "Läkaren har slutat",
    GapCause.RELISTED: "Nylistad – fast läkarkontakt upphörde vid byte av vårdcentral",
    GapCause.FLK_ENDED: "Fast läkarkontakt avslutad av annan orsak",
    GapCause.NO_FAST_VARDKONTAKT: "Har ingen fast vårdkontakt",
    GapCause.FAST_VARDKONTAKT_ENDED: "Fast vårdkontakt avslutad",
}

#: what the patient lacks, per kind of gap (worklist column, message lines)
KIND_TEXT: dict[GapKind, str] = {
    GapKind.FAST_LAKARKONTAKT: "Saknar fast läkarkontakt",
    GapKind.FAST_VARDKONTAKT: "Saknar fast vårdkontakt",
}

_RUB_TEXT = {
    5: "RUB 5 (mycket hög sjuklighet)",
    4: "RUB 4 (hög sjuklighet)",
    3: "RUB 3 (måttlig sjuklighet)",
    2: "RUB 2 (låg sjuklighet)",
    1: "RUB 1 (frisk användare)",
    0: "RUB 0 (icke-användare)",
}


def rub_text(rub: int | None) -> str:
    return "RUB saknas" if rub is None else _RUB_TEXT.get(rub, f"RUB {rub}")


class PatientIdentifierLeak(ValueError):
    """A rendered message contains something that looks like a Swedish person id."""


#: 10 or 12 digits, optionally with ``-``/``+`` before the last four: ``(YY)YYMMDD[-+]NNNC``.
PERSONAL_IDENTITY_NUMBER_PATTERN = re.compile(
    r"(?<![0-9])(?:(?P<century>[0-9]{2}))?(?P<yy>[0-9]{2})(?P<mm>[0-9]{2})(?P<dd>[0-9]{2})"
    r"[-+]?(?P<nnn>[0-9]{3})(?P<c>[0-9])(?![0-9])"
)


def _looks_like_person_id(match: re.Match[str]) -> bool:
    month, day = int(match["mm"]), int(match["dd"])
    if day > 60:
        day -= 60  # samordningsnummer
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return False
    return luhn.is_valid(match["yy"] + match["mm"] + match["dd"] + match["nnn"] + match["c"])


def ensure_no_personal_identity_number(*texts: str) -> None:
    """Raise :class:`PatientIdentifierLeak` if a text holds a valid-looking personnummer or
    samordningsnummer (10 or 12 digits, a real month and day, correct Luhn check digit)."""
    for text in texts:
        for match in PERSONAL_IDENTITY_NUMBER_PATTERN.finditer(text):
            if _looks_like_person_id(match):
                raise PatientIdentifierLeak("a rendered alert contains a person id; not sent")


def _check_url(worklist_url: str) -> None:
    if not worklist_url.startswith(("https://", "http://")):
        raise ValueError("worklist_url must be an http(s) URL")


# ---- Swedish phrasing --------------------------------------------------------------------


def _patients(n: int) -> str:
    return f"{n} patient" if n == 1 else f"{n} patienter"


def _gaps(n: int, new: bool = False) -> str:
    if new:
        return f"{n} ny vårdlucka" if n == 1 else f"{n} nya vårdluckor"
    return f"{n} vårdlucka" if n == 1 else f"{n} vårdluckor"


def _open(n: int) -> str:
    return "öppen" if n == 1 else "öppna"


def _days(n: int) -> str:
    return f"{n} dag" if n == 1 else f"{n} dagar"


def _lacks(kinds: frozenset[GapKind]) -> str:
    """What the patients lack: 'fast läkarkontakt', 'fast vårdkontakt', or both."""
    if kinds == {GapKind.FAST_VARDKONTAKT}:
        return "fast vårdkontakt"
    if GapKind.FAST_VARDKONTAKT in kinds:
        return "fast läkarkontakt eller fast vårdkontakt"
    return "fast läkarkontakt"


def _need_group(kinds: frozenset[GapKind]) -> str:
    # the fast-vårdkontakt gap is for RUB high-need patients only; the FLK gap also for SÄBO residents
    return "(RUB 4–5)" if kinds == {GapKind.FAST_VARDKONTAKT} else "(RUB 4–5 eller boende på SÄBO)"


def _subject(alert: Alert, summary: UnitGapSummary) -> str:
    unit = alert.unit_name
    lacks = _lacks(alert.kinds)
    if alert.kind is AlertKind.NEW_GAPS:
        n = alert.gap_count
        heading = "Ny vårdlucka" if n == 1 else "Nya vårdluckor"
        if len(alert.kinds) == 1:
            return f"{heading}: {_patients(n)} med stort vårdbehov saknar {lacks} – {unit}"
        return f"{heading}: patienter med stort vårdbehov saknar {lacks} ({n}) – {unit}"
    if alert.kind is AlertKind.ESCALATION:
        return (
            f"Eskalering: {_gaps(alert.gap_count)} {_open(alert.gap_count)} i minst "
            f"{_days(alert.escalation_after_days or 0)} – {unit}"
        )
    day = alert.digest_date.isoformat() if alert.digest_date else summary.as_of.date().isoformat()
    if len(alert.kinds) > 1:
        return f"Daglig sammanställning {day}: {_gaps(summary.total)}, patienter saknar {lacks} – {unit}"
    return f"Daglig sammanställning {day}: {_patients(summary.total)} saknar {lacks} – {unit}"


def _lead(alert: Alert, summary: UnitGapSummary) -> str:
    unit = alert.unit_name
    lacks = _lacks(alert.kinds)
    group = _need_group(alert.kinds)
    if alert.kind is AlertKind.NEW_GAPS:
        if len(alert.kinds) > 1:
            return (
                f"{_gaps(alert.gap_count, new=True).capitalize()} på {unit}: "
                f"patienter med stort vårdbehov {group} saknar {lacks} (se Typ av vårdlucka)."
            )
        return (
            f"{_gaps(alert.gap_count, new=True).capitalize()} på {unit}: "
            f"{_patients(alert.gap_count)} med stort vårdbehov {group} "
            f"saknar {lacks}."
        )
    if alert.kind is AlertKind.ESCALATION:
        return (
            f"{_gaps(alert.gap_count).capitalize()} på {unit} har varit {_open(alert.gap_count)} i minst "
            f"{_days(alert.escalation_after_days or 0)} utan att "
            f"{'patienten' if alert.gap_count == 1 else 'patienterna'} fått {lacks}."
        )
    if len(alert.kinds) > 1:
        return (
            f"{_gaps(summary.total).capitalize()} på {unit}: patienter med stort vårdbehov {group} "
            f"saknar {lacks} (se Typ av vårdlucka)."
        )
    return (
        f"{_patients(summary.total).capitalize()} med stort vårdbehov {group} "
        f"listade på {unit} saknar {lacks}."
    )


def _kind_lines(summary: UnitGapSummary) -> list[tuple[str, str]]:
    """By kind, shown only when the unit has a fast-vårdkontakt gap (an FLK-only unit reads as before)."""
    if not any(k is GapKind.FAST_VARDKONTAKT for k, _ in summary.by_kind):
        return []
    return [(KIND_TEXT[kind], str(n)) for kind, n in summary.by_kind]


def _cause_lines(summary: UnitGapSummary) -> list[tuple[str, str]]:
    return [(CAUSE_TEXT[cause], str(n)) for cause, n in summary.by_cause]


def _need_lines(summary: UnitGapSummary) -> list[tuple[str, str]]:
    lines = [(rub_text(rub), str(n)) for rub, n in summary.by_rub]
    if summary.sabo:
        lines.append(("Boende på SÄBO", str(summary.sabo)))
    return lines


def _oldest(summary: UnitGapSummary) -> str:
    if summary.oldest_age_days is None:
        return "Inga öppna vårdluckor just nu."
    return f"Den äldsta öppna vårdluckan har varit öppen i {_days(summary.oldest_age_days)}."


_PRIVACY = (
    "Meddelandet innehåller inga patientuppgifter. Vilka patienter det gäller ser du i "
    "arbetslistan, som kräver inloggning."
)
_AUTOMATIC = "Detta är ett automatiskt meddelande och kan inte besvaras."


# ---- email ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    to: tuple[str, ...]
    subject: str
    text_body: str
    html_body: str


def render_email(alert: Alert, summary: UnitGapSummary, worklist_url: str) -> RenderedEmail:
    _check_url(worklist_url)
    subject = _subject(alert, summary)
    lead = _lead(alert, summary)
    causes = _cause_lines(summary)
    needs = _need_lines(summary)
    kinds = _kind_lines(summary)

    text = [lead, "", f"Totalt öppna vårdluckor på {alert.unit_name}: {summary.total}"]
    if kinds:
        text += ["", "Typ av vårdlucka:"] + [f"- {label}: {n}" for label, n in kinds]
    if causes:
        text += ["", "Orsak:"] + [f"- {label}: {n}" for label, n in causes]
    if needs:
        text += ["", "Vårdbehov:"] + [f"- {label}: {n}" for label, n in needs]
    text += [
        "",
        _oldest(summary),
        "",
        f"Öppna arbetslistan (kräver inloggning): {worklist_url}",
        "",
        _PRIVACY,
        _AUTOMATIC,
    ]
    text_body = "\n".join(text) + "\n"

    e = html.escape

    def table(title: str, rows: list[tuple[str, str]]) -> str:
        if not rows:
            return ""
        cells = "".join(f"<tr><td>{e(label)}</td><td>{e(n)}</td></tr>" for label, n in rows)
        return f"<h3>{e(title)}</h3><table>{cells}</table>"

    html_body = (
        '<!DOCTYPE html><html lang="sv"><head><meta charset="utf-8">'
        f"<title>{e(subject)}</title></head><body>"
        f"<p>{e(lead)}</p>"
        f"<p>Totalt öppna vårdluckor på {e(alert.unit_name)}: <strong>{summary.total}</strong></p>"
        f"{table('Typ av vårdlucka', kinds)}{table('Orsak', causes)}{table('Vårdbehov', needs)}"
        f"<p>{e(_oldest(summary))}</p>"
        f'<p><a href="{e(worklist_url, quote=True)}">Öppna arbetslistan</a> (kräver inloggning)</p>'
        f"<p><small>{e(_PRIVACY)} {e(_AUTOMATIC)}</small></p>"
        "</body></html>"
    )
    ensure_no_personal_identity_number(subject, text_body, html_body)
    return RenderedEmail(to=alert.email_to, subject=subject, text_body=text_body, html_body=html_body)


# ---- Teams -----------------------------------------------------------------------------------


def _fact_set(rows: list[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "FactSet", "facts": [{"title": label, "value": n} for label, n in rows]}


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def render_teams_card(alert: Alert, summary: UnitGapSummary, worklist_url: str) -> dict[str, Any]:
    """The body to POST to a Teams Workflows webhook (an Adaptive Card 1.4 in a message)."""
    _check_url(worklist_url)
    body: list[dict[str, Any]] = [
        _text(_subject(alert, summary), size="Medium", weight="Bolder"),
        _text(_lead(alert, summary)),
        _fact_set([("Totalt öppna vårdluckor", str(summary.total))]),
    ]
    kinds = _kind_lines(summary)
    if kinds:
        body += [_text("Typ av vårdlucka", weight="Bolder", spacing="Medium"), _fact_set(kinds)]
    causes = _cause_lines(summary)
    if causes:
        body += [_text("Orsak", weight="Bolder", spacing="Medium"), _fact_set(causes)]
    needs = _need_lines(summary)
    if needs:
        body += [_text("Vårdbehov", weight="Bolder", spacing="Medium"), _fact_set(needs)]
    body += [
        _text(_oldest(summary), spacing="Medium"),
        _text(_PRIVACY, isSubtle=True, size="Small"),
    ]
    card = {
        "type": "message",
        "attachments": [
            {
                "contentType": ADAPTIVE_CARD_CONTENT_TYPE,
                "content": {
                    "type": "AdaptiveCard",
                    "$schema": ADAPTIVE_CARD_SCHEMA,
                    "version": ADAPTIVE_CARD_VERSION,
                    "body": body,
                    "actions": [
                        {"type": "Action.OpenUrl", "title": "Öppna arbetslistan", "url": worklist_url}
                    ],
                },
            }
        ],
    }
    ensure_no_personal_identity_number(json.dumps(card, ensure_ascii=False))
    return card
