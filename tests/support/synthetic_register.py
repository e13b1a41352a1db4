"""A synthetic listing register of any size, written with set-based SQL (290 000 persons in well under
a minute), for the goal-KPI benchmark and the test that the set-based snapshot equals the old one.

Shape over ``months`` months before ``today`` (the proportions are of persons):
  * units of ~10 000 listed persons each, 8 doctor lists and a fictive list (locums, F3) per unit, one
    doctor's role ended during the window, and one unit with nobody listed;
  * 95 % listed; 10 % switch unit during the window (the first listing ends the day the next starts),
    3 % end their listing without a new one, 8 % are listed for the first time during the window;
  * 62 % get a named FLK (some weeks after listing; some on the listing's first day), 6 % change
    doctor within the unit, half of the switchers get an FLK at the new unit, and a few keep the old
    unit's assignment open (stale); 5 % are on a fictive list only, 1 % on both kinds;
  * 0.7 % decline an FLK (F7), some of them closed later, some later given an FLK anyway;
  * 1.2 % live in a SÄBO (periods starting before and during the window, a quarter ended, the main
    care qualifier true/false/not recorded), a tenth with a second, overlapping residence;
  * 2 % leave the population (death, emigration, moving out of the region) on a dated day, a few
    with no status date, and 2 % belong to another region;
  * periods closed on their first day (empty periods) occur for listings' FLKs and declines.

Guardianship (0005) and filials (0006) are not read by the goal KPIs, so the register has none; fast
vårdkontakter and RUB assessments (0007) neither, being no part of the stored snapshot.

Deterministic for a given ``seed`` (``setseed`` and one session).
"""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

#: one statement per step, formatted with the window's first day, the persons and the units (numbers
#: and a date this module makes, never input)
STEPS: tuple[str, ...] = (
    # persons with their dice
    """
    CREATE TEMP TABLE synth ON COMMIT DROP AS
    SELECT n,
           'pk1_' || translate(lpad(n::text, 26, '0'), '0123456789', 'abcdefghij') AS pk,
           ((n::bigint * 7919) % {units})::int AS u1,
           random() AS r_list, random() AS r_move, random() AS r_flk, random() AS r_chg,
           random() AS r_sabo, random() AS r_pop, random() AS r_a, random() AS r_b, random() AS r_c
    FROM generate_series(1, {persons}) n
    """,
    """
    INSERT INTO listing.care_unit (hsa_id, name, region_code)
    SELECT format('SE-BU%s', lpad(u::text, 4, '0')), format('Vårdcentral %s', u), '19'
    FROM generate_series(0, {units}) u  -- the last one has nobody listed
    """,
    """
    INSERT INTO listing.practitioner_role (role_id, practitioner_id, care_unit_id, profession, legitimerad,
                                           employment_type, specialty, fte, start_on, end_on)
    SELECT format('role-%s-%s', u, d), format('SE-BU%s-D%s', u, d), format('SE-BU%s', lpad(u::text, 4, '0')),
           'läkare', true, CASE WHEN d = 8 THEN 'hyr' ELSE 'tillsvidare' END, 'allmanmedicin', 1.0,
           {first}::date - 3000, CASE WHEN d = 7 THEN {first}::date + 300 END
    FROM generate_series(0, {units}) u, generate_series(0, 8) d
    """,
    """
    INSERT INTO listing.doctor_list (list_id, care_unit_id, display_name, kind, role_id)
    SELECT format('list-%s-%s', u, d), format('SE-BU%s', lpad(u::text, 4, '0')),
           CASE WHEN d = 8 THEN format('Vårdcentral %s Dr X', u) ELSE format('Dr %s-%s', u, d) END,
           CASE WHEN d = 8 THEN 'fictive' ELSE 'doctor' END, format('role-%s-%s', u, d)
    FROM generate_series(0, {units}) u, generate_series(0, 8) d
    """,
    """
    INSERT INTO listing.person (patient_key, population_status, status_date, home_region, birth_date)
    SELECT pk,
           CASE WHEN r_pop < 0.010 THEN 'deceased' WHEN r_pop < 0.013 THEN 'emigrated'
                WHEN r_pop < 0.020 THEN 'moved_out_of_region' ELSE 'folkbokford' END,
           CASE WHEN r_pop < 0.0195 THEN {first}::date + (r_a * 600)::int END,
           CASE WHEN r_pop > 0.98 THEN '03' ELSE '19' END,
           date '1925-01-01' + (r_b * 36000)::int
    FROM synth
    """,
    # listings: the first (before or during the window), ended by a switch or for good
    """
    CREATE TEMP TABLE synth_listing ON COMMIT DROP AS
    SELECT s.*, format('SE-BU%s', lpad(u1::text, 4, '0')) AS unit1,
           format('SE-BU%s', lpad(((u1 + 1 + (r_a * 5)::int % ({units} - 1)) % {units})::text, 4, '0')) AS unit2,
           start1,
           CASE WHEN r_move < 0.13 AND r_list < 0.87 THEN {first}::date + 1 + (r_b * 540)::int END AS end1,
           r_move < 0.10 AND r_list < 0.87 AS switches
    FROM synth s,
         LATERAL (SELECT CASE WHEN r_list < 0.87 THEN {first}::date - 2000 + (r_c * 1990)::int
                              ELSE {first}::date + (r_c * 545)::int END AS start1) x
    WHERE r_list < 0.95
    """,
    """
    INSERT INTO listing.listing (listing_id, patient_key, care_unit_id, registered_on, start_on, end_on,
                                 origin, channel, initiated_by, end_reason)
    SELECT gen_random_uuid(), pk, unit1, start1, start1, end1, 'import', 'import', 'region',
           CASE WHEN end1 IS NOT NULL THEN 'ended' END
    FROM synth_listing
    UNION ALL
    SELECT gen_random_uuid(), pk, unit2, end1, end1,
           CASE WHEN r_chg < 0.2 THEN end1 + 1 + (r_c * 200)::int END,
           'active_choice', '1177', 'person', NULL
    FROM synth_listing WHERE switches
    """,
    # FLK assignments at the first unit: a doctor's list, a change of doctor, a fictive list
    """
    CREATE TEMP TABLE synth_flk ON COMMIT DROP AS
    SELECT l.*, a_start,
           CASE WHEN r_chg < 0.06 AND {first}::date + (r_chg * 9000)::int > a_start
                     AND (end1 IS NULL OR {first}::date + (r_chg * 9000)::int < end1)
                THEN {first}::date + (r_chg * 9000)::int END AS changed_on
    FROM synth_listing l,
         LATERAL (SELECT CASE WHEN r_a < 0.1 THEN start1 ELSE start1 + (r_a * 60)::int END AS a_start) x
    """,
    """
    INSERT INTO listing.flk_assignment (assignment_id, patient_key, list_id, care_unit_id, list_kind,
                                        practitioner_id, coordinating, start_on, end_on)
    -- the first doctor: ends with a change of doctor, with the listing (unless left stale), or with
    -- the listing's last day for persons who end for good and keep it in 30 % of cases
    SELECT gen_random_uuid(), pk, format('list-%s-%s', u1, (r_flk * 100)::int % 8), unit1, 'doctor',
           format('SE-BU%s-D%s', u1, (r_flk * 100)::int % 8), true, a_start,
           coalesce(changed_on, CASE WHEN switches AND r_b < 0.05 THEN NULL
                                     WHEN NOT switches AND r_b < 0.3 THEN NULL ELSE end1 END)
    FROM synth_flk WHERE (r_flk < 0.62 OR r_flk BETWEEN 0.67 AND 0.685) AND (end1 IS NULL OR a_start <= end1)
    UNION ALL
    SELECT gen_random_uuid(), pk, format('list-%s-%s', u1, ((r_flk * 100)::int + 1) % 8), unit1, 'doctor',
           format('SE-BU%s-D%s', u1, ((r_flk * 100)::int + 1) % 8), true, changed_on, end1
    FROM synth_flk WHERE r_flk < 0.62 AND changed_on IS NOT NULL
    UNION ALL
    SELECT gen_random_uuid(), pk, format('list-%s-8', u1), unit1, 'fictive', format('SE-BU%s-D8', u1), false,
           a_start, end1
    FROM synth_flk WHERE r_flk BETWEEN 0.61 AND 0.67 AND (end1 IS NULL OR a_start <= end1)
    """,
    # at the new unit: half of the switchers get an FLK there within a month
    """
    INSERT INTO listing.flk_assignment (assignment_id, patient_key, list_id, care_unit_id, list_kind,
                                        practitioner_id, coordinating, start_on, end_on)
    SELECT gen_random_uuid(), pk, format('list-%s-%s', substr(unit2, 6)::int, (r_c * 100)::int % 8), unit2,
           'doctor', format('SE-BU%s-D%s', substr(unit2, 6)::int, (r_c * 100)::int % 8), true,
           end1 + (r_b * 30)::int, NULL
    FROM synth_listing WHERE switches AND r_c < 0.5
    """,
    # declines (F7) at the first unit, some closed (some on their first day); some get an FLK anyway
    """
    INSERT INTO listing.flk_decline (patient_key, care_unit_id, start_on, end_on)
    SELECT pk, unit1, d_start,
           CASE WHEN r_b < 0.05 THEN d_start WHEN r_b < 0.4 THEN d_start + 1 + (r_c * 200)::int END
    FROM synth_listing, LATERAL (SELECT greatest(start1, {first}::date + (r_a * 540)::int) AS d_start) x
    WHERE r_flk BETWEEN 0.665 AND 0.672
    """,
    # SÄBO residences, a tenth with a second, overlapping one with another qualifier
    """
    INSERT INTO listing.sabo_residence (residence_id, patient_key, start_on, end_on, municipality_code,
                                        recorded_at, main_care_in_residence)
    SELECT format('res-%s-%s', n, k), pk, s_start + k * 20,
           CASE WHEN r_b < 0.25 OR k = 1 THEN s_start + k * 20 + (r_c * 300)::int END, '1980', now(),
           CASE WHEN mod(r_a + k * 0.5, 1.0) < 0.7 THEN true WHEN mod(r_a + k * 0.5, 1.0) < 0.85 THEN false END
    FROM (SELECT n, pk, r_a::numeric AS r_a, r_b, r_c, r_chg, r_sabo FROM synth) s,
         LATERAL (SELECT {first}::date - 400 + (r_sabo * 75000)::int AS s_start) x,
         generate_series(0, CASE WHEN r_chg > 0.9 THEN 1 ELSE 0 END) k
    WHERE r_sabo < 0.012
    """,
)


async def fill_register(conn: Any, persons: int, *, today: date, months: int = 18, seed: float = 0.5) -> date:
    """Write a register of ``persons`` persons into a migrated, empty database; the window's first day."""
    first_day = today - timedelta(days=round(months * 30.44))
    units = max(2, round(persons / 10_000))
    async with conn.transaction():
        await conn.execute("SELECT setseed($1)", seed)
        for step in STEPS:
            await conn.execute(step.format(first=f"'{first_day.isoformat()}'", persons=int(persons), units=units))
    await conn.execute("ANALYZE")
    return first_day
