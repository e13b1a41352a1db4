"""Events: what detection decides (a gap opened, a gap resolved)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from .vocabulary import GapCause, GapKind, GapResolution


@dataclass(frozen=True, slots=True)
class CareGapOpened:
    gap_id: uuid.UUID
    patient_key: str
    unit_id: str
    cause: GapCause
    rub: int | None
    """The latest RUB when the gap opened (None: no assessment; the patient is a SÄBO resident)."""
    sabo: bool
    opened_at: datetime
    kind: GapKind = GapKind.FAST_LAKARKONTAKT


@dataclass(frozen=True, slots=True)
class CareGapResolved:
    gap_id: uuid.UUID
    patient_key: str
    unit_id: str
    resolution: GapResolution
    resolved_at: datetime
    kind: GapKind = GapKind.FAST_LAKARKONTAKT


GapEvent: TypeAlias = CareGapOpened | CareGapResolved
