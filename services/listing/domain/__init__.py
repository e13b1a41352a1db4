"""The pure listing domain: who is listed where, and who their fast läkarkontakt is.

Public API::

    decide(state: ListingState, command: Command, policy: PolicyProfile) -> list[Event]
    evolve(state: ListingState, event: Event) -> ListingState
    profile_for(name: str, on_date: date) -> PolicyProfile

No I/O anywhere in this package, and none at import time.
"""

from .evolve import evolve, evolve_all
from .model import ListingState, PatientRecord
from .policy import PROFILES, PolicyProfile, profile_for
from .reasons import RejectionReason, RuleId
from .rules import decide, decide_under

__all__ = [
    "PROFILES",
    "ListingState",
    "PatientRecord",
    "PolicyProfile",
    "RejectionReason",
    "RuleId",
    "decide",
    "decide_under",
    "evolve",
    "evolve_all",
    "profile_for",
]
