"""Rule ids of docs/domain.md §3 and the reasons a command can be rejected.

Every :class:`RejectionReason` member carries the rule id and a message a listing
administrator understands, in Swedish and English. Messages are fixed texts: they never
interpolate anything about the person (P2).
"""

from __future__ import annotations

from enum import Enum, StrEnum


class RuleId(StrEnum):
    L1 = "L1"  # one active listing; a new one ends the previous atomically
    L2 = "L2"  # never reject for distance or catchment area
    L3 = "L3"  # unit run by / under contract with the region on the date
    L4 = "L4"  # folkbokförd in the region (or configured exception group)
    L5 = "L5"  # at most 2 person-initiated changes per rolling 12 months
    L6 = "L6"  # responsibility starts the day after registration
    L7 = "L7"  # unit listing limit
    F1 = "F1"  # FLK is a legitimerad läkare
    F2 = "F2"  # regional eligibility
    F3 = "F3"  # fictive lists for locums
    F4 = "F4"  # FLK works at the listing unit
    F5 = "F5"  # one FLK (Kronoberg: several, exactly one coordinating)
    F6 = "F6"  # capacity
    F7 = "F7"  # declined FLK
    F8 = "F8"  # doctor leaves
    V1 = "V1"  # fast vårdkontakt
    P1 = "P1"  # death / emigration
    P2 = "P2"  # protected identity
    P3 = "P3"  # minors


class RejectionReason(Enum):
    """Why a command was rejected. ``value`` is a stable code; ``rule_id`` ties it to docs/domain.md §3."""

    rule_id: RuleId
    message_sv: str
    message_en: str

    def __new__(cls, code: str, rule_id: RuleId, message_sv: str, message_en: str) -> RejectionReason:
        member = object.__new__(cls)
        member._value_ = code
        member.rule_id = rule_id
        member.message_sv = message_sv
        member.message_en = message_en
        return member

    def message(self, language: str = "sv") -> str:
        return self.message_sv if language == "sv" else self.message_en

    # ---- L1
    ALREADY_LISTED_AT_UNIT = (
        "already_listed_at_unit",
        RuleId.L1,
        "Personen är redan listad på den här vårdcentralen.",
        "The person is already listed at this care unit.",
    )
    NOT_LISTED = (
        "not_listed",
        RuleId.L1,
        "Personen har ingen aktiv listning att avsluta.",
        "The person has no active listing to end.",
    )
    EFFECTIVE_DATE_BEFORE_CURRENT_LISTING = (
        "effective_date_before_current_listing",
        RuleId.L1,
        "Datumet ligger före personens nuvarande listning. Bakåtdaterade byten görs inte här.",
        "The date is before the person's current listing. Backdated changes are not made here.",
    )
    # ---- L3
    UNIT_UNKNOWN = (
        "unit_unknown",
        RuleId.L3,
        "Vårdcentralen finns inte bland regionens vårdenheter.",
        "The care unit is not one of the region's care units.",
    )
    NO_CONTRACT_ON_DATE = (
        "no_contract_on_date",
        RuleId.L3,
        "Vårdcentralen drivs inte av eller har inget avtal med regionen på det datumet.",
        "The care unit is not run by, or under contract with, the region on that date.",
    )
    # ---- L4
    PERSON_UNKNOWN = (
        "person_unknown",
        RuleId.L4,
        "Personen finns inte i regionens befolkningsuppgifter.",
        "The person is not in the region's population data.",
    )
    NOT_FOLKBOKFORD_IN_REGION = (
        "not_folkbokford_in_region",
        RuleId.L4,
        "Personen är inte folkbokförd i regionen och tillhör ingen undantagsgrupp som får listas.",
        "The person is not registered as resident in the region and belongs to no exception group "
        "that may be listed.",
    )
    # ---- L5
    SWITCH_LIMIT = (
        "switch_limit",
        RuleId.L5,
        "Högst två egna byten av vårdcentral per 12 månader. Bytet kan göras om det finns särskilda "
        "skäl, om vårdcentralen har stängt eller om personen har flyttat.",
        "At most two person-initiated changes of care unit per 12 months. The change can be made "
        "for special reasons, if the care unit has closed or if the person has moved.",
    )
    # ---- L7
    LISTING_LIMIT_REACHED = (
        "listing_limit_reached",
        RuleId.L7,
        "Vårdcentralen har nått sitt beslutade listningstak. Nya listningar tas bara emot för "
        "undantagna grupper.",
        "The care unit has reached its decided listing limit. New listings are only accepted for "
        "exempted groups.",
    )
    # ---- P1
    PERSON_DECEASED = (
        "person_deceased",
        RuleId.P1,
        "Personen är avliden enligt folkbokföringen.",
        "The person is deceased according to the population register.",
    )
    PERSON_EMIGRATED = (
        "person_emigrated",
        RuleId.P1,
        "Personen har utvandrat enligt folkbokföringen.",
        "The person has emigrated according to the population register.",
    )
    # ---- P3
    GUARDIAN_CONSENT_MISSING = (
        "guardian_consent_missing",
        RuleId.P3,
        "Barnet listas av vårdnadshavarna. Samtycke saknas från minst en vårdnadshavare.",
        "A child is listed by the guardians. Consent is missing from at least one guardian.",
    )
    CONSENT_BY_NON_GUARDIAN = (
        "consent_by_non_guardian",
        RuleId.P3,
        "Samtycket kommer från någon som inte är barnets vårdnadshavare enligt folkbokföringen.",
        "The consent comes from someone who is not the child's guardian according to the population register.",
    )
    GUARDIAN_REFUSED = (
        "guardian_refused",
        RuleId.P3,
        "En vårdnadshavare har inte samtyckt till listningen. Barnet listas inte.",
        "A guardian has refused the listing. The child is not listed.",
    )
    GUARDIAN_CONSENT_EXPIRED = (
        "guardian_consent_expired",
        RuleId.P3,
        "Den andra vårdnadshavaren samtyckte inte inom svarstiden. Ansök om listning på nytt.",
        "The other guardian did not consent within the time allowed. Request the listing again.",
    )
    NO_PENDING_LISTING_REQUEST = (
        "no_pending_listing_request",
        RuleId.P3,
        "Det finns ingen listning av barnet på den här vårdcentralen som väntar på samtycke.",
        "No listing of the child at this care unit is waiting for consent.",
    )
    CONSENT_ALREADY_GIVEN = (
        "consent_already_given",
        RuleId.P3,
        "Vårdnadshavaren har redan samtyckt till listningen.",
        "The guardian has already consented to the listing.",
    )
    # ---- F1
    NOT_LEGITIMERAD_LAKARE = (
        "not_legitimerad_lakare",
        RuleId.F1,
        "En fast läkarkontakt måste vara legitimerad läkare.",
        "A fast läkarkontakt (named regular doctor) must be a licensed physician.",
    )
    LIST_HAS_NO_ACTIVE_DOCTOR = (
        "list_has_no_active_doctor",
        RuleId.F1,
        "Listan har ingen läkare i tjänst på datumet. Koppla listan till en läkare först.",
        "The list has no doctor in service on that date. Bind the list to a doctor first.",
    )
    # ---- F2
    EMPLOYMENT_NOT_ELIGIBLE = (
        "employment_not_eligible",
        RuleId.F2,
        "Hyr-, stafett- och konsultläkare kan inte vara fast läkarkontakt i regionen. Placera "
        "patienten på vårdcentralens fiktiva lista.",
        "Hired, locum and consultant doctors cannot be a fast läkarkontakt in this region. Place the "
        "patient on the care unit's fictive list.",
    )
    SPECIALTY_NOT_ELIGIBLE = (
        "specialty_not_eligible",
        RuleId.F2,
        "Läkarens specialitet får inte vara fast läkarkontakt i regionen.",
        "The doctor's specialty may not act as fast läkarkontakt in this region.",
    )
    OUTSIDE_SPECIALTY_PATIENT_GROUP = (
        "outside_specialty_patient_group",
        RuleId.F2,
        "Läkaren kan bara vara fast läkarkontakt för sin patientgrupp (geriatrik: äldre, pediatrik: "
        "barn), och patienten tillhör inte den.",
        "The doctor can only be fast läkarkontakt for their patient group (geriatrics: the elderly, "
        "paediatrics: children), and the patient is not in it.",
    )
    # ---- F3
    FICTIVE_LISTS_NOT_USED = (
        "fictive_lists_not_used",
        RuleId.F3,
        "Regionen använder inte fiktiva listor.",
        "The region does not use fictive lists.",
    )
    # ---- F4
    LIST_UNKNOWN = (
        "list_unknown",
        RuleId.F4,
        "Listan finns inte.",
        "The list does not exist.",
    )
    NOT_LISTED_AT_LIST_UNIT = (
        "not_listed_at_list_unit",
        RuleId.F4,
        "Den fasta läkarkontakten ska finnas på den vårdcentral där patienten är listad.",
        "The fast läkarkontakt must work at the care unit where the patient is listed.",
    )
    # ---- F5
    COORDINATING_FLK_NOT_AT_LISTING_UNIT = (
        "coordinating_flk_not_at_listing_unit",
        RuleId.F5,
        "Den sammanhållande fasta läkarkontakten ska finnas på vårdcentralen där patienten är listad, "
        "när patienten har en fast läkarkontakt där.",
        "The coordinating fast läkarkontakt must be at the care unit where the patient is listed when the "
        "patient has a fast läkarkontakt there.",
    )
    TOO_MANY_FAST_LAKARKONTAKTER = (
        "too_many_fast_lakarkontakter",
        RuleId.F5,
        "Patienten har redan en fast läkarkontakt. Avsluta eller ersätt den först.",
        "The patient already has a fast läkarkontakt. End or replace it first.",
    )
    ALREADY_ON_LIST = (
        "already_on_list",
        RuleId.F5,
        "Patienten har redan den här fasta läkarkontakten.",
        "The patient already has this fast läkarkontakt.",
    )
    NO_SUCH_ASSIGNMENT = (
        "no_such_assignment",
        RuleId.F5,
        "Patienten har ingen sådan aktiv fast läkarkontakt.",
        "The patient has no such active fast läkarkontakt.",
    )
    # ---- F6
    CAPACITY_HARD_CAP = (
        "capacity_hard_cap",
        RuleId.F6,
        "Läkarens lista har nått regionens högsta tillåtna storlek.",
        "The doctor's list has reached the region's maximum list size.",
    )
    # ---- F7
    ALREADY_DECLINED = (
        "already_declined",
        RuleId.F7,
        "Patienten har redan avböjt fast läkarkontakt på vårdcentralen.",
        "The patient has already declined a fast läkarkontakt at this care unit.",
    )
    # ---- F8
    ROLE_UNKNOWN = (
        "role_unknown",
        RuleId.F8,
        "Läkarens uppdrag på vårdcentralen är okänt.",
        "The doctor's role at the care unit is unknown.",
    )
    # ---- V1
    NOT_APPOINTED_BY_VERKSAMHETSCHEF = (
        "not_appointed_by_verksamhetschef",
        RuleId.V1,
        "En fast vårdkontakt utses av verksamhetschefen.",
        "A fast vårdkontakt is appointed by the head of the care unit (verksamhetschef).",
    )
    FAST_VARDKONTAKT_ALREADY_APPOINTED = (
        "fast_vardkontakt_already_appointed",
        RuleId.V1,
        "Personen är redan fast vårdkontakt för patienten.",
        "This person is already the patient's fast vårdkontakt.",
    )
    NO_SUCH_FAST_VARDKONTAKT = (
        "no_such_fast_vardkontakt",
        RuleId.V1,
        "Patienten har ingen sådan aktiv fast vårdkontakt.",
        "The patient has no such active fast vårdkontakt.",
    )
