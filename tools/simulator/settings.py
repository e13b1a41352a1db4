"""The simulator's realism knobs, with their defaults and where each default comes from.

Every number here is an ASSUMPTION of the synthetic region, not a fact about a real one: the
sources (seeds 001–004, docs/domain.md) give the goals and rules but not these distributions.
They are chosen to look like a Swedish region "today" and can be overridden per preset or per run
(``SimSettings(...)`` / ``dataclasses.replace``).

Population
    * Age pyramid: rough Swedish shares (SCB 2023, rounded): 0–4 5.6 %, 5–14 11.8 %, 15–19 5.8 %,
      20–29 12.4 %, 30–39 13 %, 40–49 12.5 %, 50–59 12.5 %, 60–69 11 %, 70–79 10 %, 80–89 4.6 %,
      90–104 1 % (``age_bands``).
    * Protected identity (skyddad folkbokföring / sekretessmarkering): 0.15 % at the start
      (``protected_share``), plus a few per 100 000 per month during the period.
    * Not listed anywhere: 2 % (``unlisted_share``) — they are in the population (G1 denominator).
    * Deaths: Gompertz hazard ``death_a · e^(death_b · age)`` per year (≈ Swedish life table:
      0.7 % at 60, 5 % at 80, 13 % at 90), × ``sabo_death_multiplier`` (3) for SÄBO residents.
    * Emigration 0.5 %/year, moving out of the region 1.5 %/year (ages 18–45 twice as likely);
      births 1.0 %/year and people moving in 2.5 %/year keep the population roughly stable.

RUB (ACG Resource Utilization Band)
    * Marginal distribution ``rub_shares`` (assumed, roughly what Swedish ACG reports show for a
      whole population): RUB 0 17 %, 1 13 %, 2 30 %, 3 30 %, 4 7 %, 5 3 %.
    * Correlated with age through a Gaussian copula (``rub_age_correlation`` 0.55) so the marginal
      stays the setting while old people have higher bands. SÄBO residents get at least RUB 3.
    * The ACG run is periodic (every ``acg_run_every_months`` = 3 months, 18-month look-back);
      at each run a band may move one step up or down: proposed with ``rub_drift`` (3 %) each way
      and accepted so that ``rub_shares`` is the chain's stationary distribution (a Metropolis
      birth-death chain: a move from a common to a rarer band is taken less often). The shares
      therefore stay put over the period instead of drifting towards the rare bands, and the RUB
      4–5 alert cohort does not grow by itself. Only changed bands are emitted
      (``acg_emit_unchanged`` False) — the opening run emits everyone.

SÄBO (särskilt boende för äldre)
    * Share by age (``sabo_share_by_age``): 65–79 1.2 %, 80–89 10 %, 90+ 30 % → about 1 % of the
      population, mostly 80+. New moves into SÄBO: 80+ 0.4 %/month, 90+ 1.2 %/month.
    * ``sabo_main_care_elsewhere_share`` (8 %) of residents do not get their main health care in the
      residence (``main_care_in_residence`` false: not in G3/G4); the rest do. An assumption: the
      sources give no figure, only that the goals count those who get it there (seed 001).

Fast läkarkontakt (FLK) at the start — below the 55 % goal (G1) and the 80 % SÄBO goal (G3)
    * ``flk_initial_share`` 0.45 of listed persons, shaped by RUB (``flk_rub_multiplier``:
      0.55, 0.75, 0.95, 1.2, 1.5, 1.6 for RUB 0–5, normalised to mean 1) and by unit; SÄBO
      residents ``flk_sabo_share`` 0.70. Limited by the doctors' capacity (1 100 × FTE for a
      specialist, an individually agreed 300–550 × FTE for an ST-läkare; F6).
    * Units that rely on locums (``locum_unit_share`` 25 % of units, at least one when there are
      two or more) have few permanent doctors and a lower FLK factor (``locum_unit_flk_factor``
      0.5, other units 1.0–1.3); ``fictive_share_at_locum_units`` (45 %) of their listed patients
      without a named FLK are on a fictive list
      "<VC> Dr X" (F3) → 5–10 % of all patients.
    * During the period units work towards the goal: each month a person without a named FLK
      gets one with ``flk_assign_monthly`` (1 %) × RUB/SÄBO factor (RUB 4–5 ×3, SÄBO ×4),
      and 15 %/month after their doctor left (``flk_reassign_after_leave_monthly``).

Roster
    * ~1 specialist per 1 800 listed (locum units: 1 per 3 500 plus 2–3 locum slots), 1 ST-läkare
      per 5 000, nurses 1 per 1 500, physiotherapist 1 per 6 000, psychologist/kurator 1 per 8 000.
    * Turnover: permanent doctors leave with 1 %/month, ST 1.5 %/month, other professions
      1 %/month; locum contracts last 2–8 months. Replacement after 30–120 days (locums 0–14).
      When a doctor leaves, their patients lose their FLK (F8; the listing service ends it).

Visits (contacts)
    * Per person and year by RUB (``visits_per_year_by_rub``: 0.2, 1, 2, 4, 8, 14), × 1.3 for
      ages 0–4, × 1.2 for 80+, + 6 home-visit contacts for SÄBO residents.
    * Doctor share of contacts 38 % (45 % RUB 4–5, 30 % ages 0–6); the rest nurses,
      district nurses, physiotherapists, psychologists, kuratorer.
    * 93 % at the listing unit, the rest at another unit of the area.
    * Continuity differs by unit: the share of doctor visits with the patient's FLK when the
      patient has one (``kpc_with_flk`` spread evenly over 0.45–0.85 across units); without an
      FLK the patient sees an informal "usual" doctor with ``usual_without_flk`` (0.15–0.40).
      Patients on a fictive list see the list's locum with 35 %. So continuity rises when an
      FLK is assigned.
    * 2 % of visits are later cancelled / entered in error / no-shows (``visit.cancelled.v1``).

Guardians (P3) — what the population register says and how the second guardian answers
    * Every person registered as a minor is registered with ``guardian_keys``: two guardians for
      ``two_guardians_share`` (90 %: most children are in joint custody, gemensam vårdnad), one for
      the rest. Guardians are adults of the area who were 18–50 when the child was born (picked from
      those already registered), otherwise people outside the region (a key all the same). Drawn
      from their own random stream, so the rest of the stream does not depend on them. The register
      is not updated when a child turns 18 (P3 no longer applies then).
    * A minor's listing request by the guardians during the period (1177: a child moving in, a
      child choosing another unit) carries every guardian's consent, except that for
      ``one_guardian_request_share`` (20 %) of children with two guardians one guardian asks alone
      (``consenting_guardian_keys`` = that one): the listing service lets it wait. The other
      guardian answers ``second_guardian_answer_days`` (1–14) days later with ``listing.consent.v1``:
      refuses with ``second_guardian_refuses_share`` (5 %), never answers with
      ``second_guardian_silent_share`` (10 %; the request expires through the listing service's
      sweep after the profile's 30 days), else consents. A refused or unanswered child stays where
      it was (another unit, or unlisted).

History
    * ``history_months`` (18, the follow-up window of the continuity measure) of visits before the
      period, for everyone registered at its start, drawn with the same rates and behaviour as the
      period's first month (the people's units, FLKs, RUB and SÄBO as at the start). They are
      published at the start instant, as a region's history import would be, with their own past
      dates: every continuity window of the period is then complete, and
      ``Simulation.history_start`` is the date from which the simulated visit data are complete
      (the main job records it as the region's data coverage). 0 turns the history off.
"""
from __future__ import annotations

from dataclasses import dataclass

#: (min age, max age inclusive, share)
DEFAULT_AGE_BANDS: tuple[tuple[int, int, float], ...] = (
    (0, 4, 0.056), (5, 14, 0.118), (15, 19, 0.058), (20, 29, 0.124), (30, 39, 0.130),
    (40, 49, 0.125), (50, 59, 0.125), (60, 69, 0.110), (70, 79, 0.100), (80, 89, 0.046),
    (90, 104, 0.010),
)

#: non-doctor professions and their relative share of non-doctor contacts
DEFAULT_OTHER_PROFESSIONS: tuple[tuple[str, float], ...] = (
    ("distriktssköterska", 0.38), ("sjuksköterska", 0.32), ("fysioterapeut", 0.16),
    ("psykolog", 0.08), ("kurator", 0.06),
)


@dataclass(frozen=True)
class SimSettings:
    # population
    age_bands: tuple[tuple[int, int, float], ...] = DEFAULT_AGE_BANDS
    protected_share: float = 0.0015
    protected_monthly: float = 0.00003
    unlisted_share: float = 0.02
    death_a: float = 1.9e-5
    death_b: float = 0.098
    death_floor: float = 0.0002
    sabo_death_multiplier: float = 3.0
    emigration_yearly: float = 0.005
    move_out_yearly: float = 0.015
    births_yearly: float = 0.010
    move_in_yearly: float = 0.025
    relisting_monthly: float = 0.004

    # RUB / ACG
    rub_shares: tuple[float, ...] = (0.17, 0.13, 0.30, 0.30, 0.07, 0.03)
    rub_age_correlation: float = 0.55
    acg_run_every_months: int = 3
    acg_lookback_months: int = 18
    acg_version: str = "ACG 13.0"
    rub_drift: float = 0.03
    acg_emit_unchanged: bool = False

    # visit history before the simulated period (published at its start, as a history import is)
    history_months: int = 18

    # SÄBO
    sabo_share_by_age: tuple[tuple[int, float], ...] = ((65, 0.012), (80, 0.10), (90, 0.30))
    sabo_entry_monthly_by_age: tuple[tuple[int, float], ...] = ((80, 0.004), (90, 0.012))
    sabo_main_care_elsewhere_share: float = 0.08

    # FLK
    flk_initial_share: float = 0.45
    flk_rub_multiplier: tuple[float, ...] = (0.55, 0.75, 0.95, 1.2, 1.5, 1.6)
    flk_sabo_share: float = 0.70
    locum_unit_share: float = 0.25
    fictive_share_at_locum_units: float = 0.45
    locum_unit_flk_factor: float = 0.5
    unit_flk_factor_range: tuple[float, float] = (1.0, 1.3)
    flk_assign_monthly: float = 0.010
    flk_assign_high_rub_factor: float = 3.0
    flk_assign_sabo_factor: float = 4.0
    flk_reassign_after_leave_monthly: float = 0.15
    specialist_capacity_per_fte: int = 1100
    st_capacity_range: tuple[int, int] = (300, 550)

    # roster
    listed_per_specialist: int = 1800
    listed_per_specialist_locum_unit: int = 3500
    locum_slots_range: tuple[int, int] = (2, 3)
    listed_per_st: int = 5000
    listed_per_nurse: int = 1500
    listed_per_physio: int = 6000
    listed_per_psych: int = 8000
    leave_monthly_permanent: float = 0.010
    leave_monthly_st: float = 0.015
    leave_monthly_other: float = 0.010
    locum_contract_months: tuple[int, int] = (2, 8)
    replacement_gap_days: tuple[int, int] = (30, 120)
    locum_replacement_gap_days: tuple[int, int] = (0, 14)

    # visits
    visits_per_year_by_rub: tuple[float, ...] = (0.2, 1.0, 2.0, 4.0, 8.0, 14.0)
    sabo_extra_visits_per_year: float = 6.0
    doctor_share: float = 0.38
    doctor_share_high_rub: float = 0.45
    doctor_share_young_children: float = 0.30
    other_professions: tuple[tuple[str, float], ...] = DEFAULT_OTHER_PROFESSIONS
    at_listing_unit_share: float = 0.93
    kpc_with_flk_range: tuple[float, float] = (0.45, 0.85)
    usual_without_flk_range: tuple[float, float] = (0.15, 0.40)
    fictive_locum_continuity: float = 0.35
    nurse_continuity_range: tuple[float, float] = (0.30, 0.65)
    cancelled_share: float = 0.02

    # listing import extract
    extract_violation_share: float = 0.01

    # P3: guardians (vårdnadshavare) of minors and the second guardian's consent
    two_guardians_share: float = 0.90
    one_guardian_request_share: float = 0.20
    second_guardian_refuses_share: float = 0.05
    second_guardian_silent_share: float = 0.10
    second_guardian_answer_days: tuple[int, int] = (1, 14)
