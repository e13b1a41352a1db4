"""Pure continuity-of-care domain: indices, window, per-patient state (no I/O; the state's binary codec is
``services.continuity.adapters.state_codec``)."""
from __future__ import annotations

from .indices import IndexSet, coc, hhi, index_set, kpc, mmci, secon, upc
from .patient import (
    EMPTY_STATE,
    PatientIndices,
    PatientState,
    StoredVisit,
    Tombstone,
    Visit,
    advance,
    cancel_visit,
    compute_indices,
    record_visit,
    set_listing,
    visit_digest,
)
from .settings import ContinuitySettings, Scope
from .window import add_months, in_window, window_bounds, window_start

__all__ = [
    "EMPTY_STATE",
    "ContinuitySettings",
    "IndexSet",
    "PatientIndices",
    "PatientState",
    "Scope",
    "StoredVisit",
    "Tombstone",
    "Visit",
    "add_months",
    "advance",
    "cancel_visit",
    "coc",
    "compute_indices",
    "hhi",
    "in_window",
    "index_set",
    "kpc",
    "mmci",
    "record_visit",
    "secon",
    "set_listing",
    "upc",
    "visit_digest",
    "window_bounds",
    "window_start",
]
