-- Fasta kontakter KPIs (issue 13, item 6): the share with a named fast läkarkontakt (FLK), with an open
-- fast vårdkontakt, and with both — for the population, for RUB 4–5 patients and for SÄBO residents.
--
-- Sources: seed 004 (Kalmar: "Vårdenheten ska säkerställa att patienter med ett stort vårdbehov
-- identifierat med hjälp av RUB har en fast läkarkontakt ... [och] en fast vårdkontakt"); seed 002 (SKR's
-- survey, autumn 2021: 93 % of SÄBO residents have a fast läkarkontakt, 97 % a fast vårdkontakt — the
-- latter within the MUNICIPAL health care, which this register does not hold: a reference, not a target).
--
-- Definitions (the same as the goal KPIs of 0002/0004 where they overlap):
--   named FLK          an active assignment on a doctor's list on the date (a fictive list is not one, F3)
--   fast vårdkontakt   an appointment (V1, any profession, any unit) with start_on <= date < end_on (or open)
--   RUB 4–5            the person's LATEST risk assessment computed on or before the date has rub 4 or 5
--                      (assessments are versioned by computed_at; a person never assessed is in neither
--                      group and is counted in `without_rub`); bands 4–5 as in brief §6 and seed 004
--   SÄBO               G3's population (0004): resident on the date and gets their main care there, or
--                      that is not recorded
-- Population per region: folkbokförda in the region on the date (as G1). Per unit: the unit's listed
-- persons who are alive and resident (as goal_kpi_unit_on); units with nobody listed have null shares.
--
-- Aggregates only: the per-person function is not granted to the read-only role.

CREATE FUNCTION listing.fasta_kontakter_status_on(on_date date)
RETURNS TABLE (
    patient_key      text,
    home_region      text,
    in_population    boolean,
    alive_resident   boolean,
    listed_unit      text,
    named_flk        boolean,
    fast_vardkontakt boolean,
    rub              smallint,  -- the latest assessment on or before the date; NULL = never assessed
    g3_resident      boolean
) LANGUAGE sql STABLE AS $$
    SELECT s.patient_key, s.home_region, s.in_population, s.alive_resident, s.listed_unit, s.named_flk,
           EXISTS (SELECT 1 FROM listing.fast_vardkontakt v
                   WHERE v.patient_key = s.patient_key AND v.start_on <= on_date
                     AND (v.end_on IS NULL OR v.end_on > on_date)),
           r.rub,
           s.g3_resident
    FROM listing.person_goal_status_on(on_date) s
    LEFT JOIN LATERAL (
        SELECT x.rub FROM listing.risk_assessment x
        WHERE x.patient_key = s.patient_key AND x.computed_at < (on_date + 1)::timestamptz
        ORDER BY x.computed_at DESC, x.assessment_id DESC
        LIMIT 1
    ) r ON true
$$;
REVOKE EXECUTE ON FUNCTION listing.fasta_kontakter_status_on(date) FROM PUBLIC;

CREATE FUNCTION listing.fasta_kontakter_kpi_region_on(on_date date)
RETURNS TABLE (
    region_code                     text,
    population                      bigint,
    with_named_flk                  bigint,
    with_fast_vardkontakt           bigint,
    with_both                       bigint,
    share_named_flk                 numeric,
    share_fast_vardkontakt          numeric,
    share_both                      numeric,
    rub_4_5                         bigint,
    rub_4_5_with_named_flk          bigint,
    rub_4_5_with_fast_vardkontakt   bigint,
    rub_4_5_with_both               bigint,
    rub_4_5_share_named_flk         numeric,
    rub_4_5_share_fast_vardkontakt  numeric,
    rub_4_5_share_both              numeric,
    without_rub                     bigint,
    g3_residents                    bigint,
    g3_with_named_flk               bigint,
    g3_with_fast_vardkontakt        bigint,
    g3_with_both                    bigint,
    g3_share_named_flk              numeric,
    g3_share_fast_vardkontakt       numeric,
    g3_share_both                   numeric
) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.home_region,
           count(*),
           count(*) FILTER (WHERE s.named_flk),
           count(*) FILTER (WHERE s.fast_vardkontakt),
           count(*) FILTER (WHERE s.named_flk AND s.fast_vardkontakt),
           round(count(*) FILTER (WHERE s.named_flk)::numeric / nullif(count(*), 0), 4),
           round(count(*) FILTER (WHERE s.fast_vardkontakt)::numeric / nullif(count(*), 0), 4),
           round(count(*) FILTER (WHERE s.named_flk AND s.fast_vardkontakt)::numeric / nullif(count(*), 0), 4),
           count(*) FILTER (WHERE s.rub >= 4),
           count(*) FILTER (WHERE s.rub >= 4 AND s.named_flk),
           count(*) FILTER (WHERE s.rub >= 4 AND s.fast_vardkontakt),
           count(*) FILTER (WHERE s.rub >= 4 AND s.named_flk AND s.fast_vardkontakt),
           round(count(*) FILTER (WHERE s.rub >= 4 AND s.named_flk)::numeric
                 / nullif(count(*) FILTER (WHERE s.rub >= 4), 0), 4),
           round(count(*) FILTER (WHERE s.rub >= 4 AND s.fast_vardkontakt)::numeric
                 / nullif(count(*) FILTER (WHERE s.rub >= 4), 0), 4),
           round(count(*) FILTER (WHERE s.rub >= 4 AND s.named_flk AND s.fast_vardkontakt)::numeric
                 / nullif(count(*) FILTER (WHERE s.rub >= 4), 0), 4),
           count(*) FILTER (WHERE s.rub IS NULL),
           count(*) FILTER (WHERE s.g3_resident),
           count(*) FILTER (WHERE s.g3_resident AND s.named_flk),
           count(*) FILTER (WHERE s.g3_resident AND s.fast_vardkontakt),
           count(*) FILTER (WHERE s.g3_resident AND s.named_flk AND s.fast_vardkontakt),
           round(count(*) FILTER (WHERE s.g3_resident AND s.named_flk)::numeric
                 / nullif(count(*) FILTER (WHERE s.g3_resident), 0), 4),
           round(count(*) FILTER (WHERE s.g3_resident AND s.fast_vardkontakt)::numeric
                 / nullif(count(*) FILTER (WHERE s.g3_resident), 0), 4),
           round(count(*) FILTER (WHERE s.g3_resident AND s.named_flk AND s.fast_vardkontakt)::numeric
                 / nullif(count(*) FILTER (WHERE s.g3_resident), 0), 4)
    FROM listing.fasta_kontakter_status_on(on_date) s
    WHERE s.in_population
    GROUP BY s.home_region
$$;

CREATE FUNCTION listing.fasta_kontakter_kpi_unit_on(on_date date)
RETURNS TABLE (
    care_unit_id                    text,
    region_code                     text,
    listed                          bigint,
    with_named_flk                  bigint,
    with_fast_vardkontakt           bigint,
    with_both                       bigint,
    share_named_flk                 numeric,
    share_fast_vardkontakt          numeric,
    share_both                      numeric,
    rub_4_5                         bigint,
    rub_4_5_with_named_flk          bigint,
    rub_4_5_with_fast_vardkontakt   bigint,
    rub_4_5_with_both               bigint,
    rub_4_5_share_named_flk         numeric,
    rub_4_5_share_fast_vardkontakt  numeric,
    rub_4_5_share_both              numeric,
    without_rub                     bigint,
    g3_residents                    bigint,
    g3_with_named_flk               bigint,
    g3_with_fast_vardkontakt        bigint,
    g3_with_both                    bigint,
    g3_share_named_flk              numeric,
    g3_share_fast_vardkontakt       numeric,
    g3_share_both                   numeric
) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH s AS (
        SELECT * FROM listing.fasta_kontakter_status_on(on_date) WHERE alive_resident AND listed_unit IS NOT NULL
    )
    SELECT u.hsa_id,
           u.region_code,
           count(s.patient_key),
           count(*) FILTER (WHERE s.named_flk),
           count(*) FILTER (WHERE s.fast_vardkontakt),
           count(*) FILTER (WHERE s.named_flk AND s.fast_vardkontakt),
           round(count(*) FILTER (WHERE s.named_flk)::numeric / nullif(count(s.patient_key), 0), 4),
           round(count(*) FILTER (WHERE s.fast_vardkontakt)::numeric / nullif(count(s.patient_key), 0), 4),
           round(count(*) FILTER (WHERE s.named_flk AND s.fast_vardkontakt)::numeric / nullif(count(s.patient_key), 0), 4),
           count(*) FILTER (WHERE s.rub >= 4),
           count(*) FILTER (WHERE s.rub >= 4 AND s.named_flk),
           count(*) FILTER (WHERE s.rub >= 4 AND s.fast_vardkontakt),
           count(*) FILTER (WHERE s.rub >= 4 AND s.named_flk AND s.fast_vardkontakt),
           round(count(*) FILTER (WHERE s.rub >= 4 AND s.named_flk)::numeric
                 / nullif(count(*) FILTER (WHERE s.rub >= 4), 0), 4),
           round(count(*) FILTER (WHERE s.rub >= 4 AND s.fast_vardkontakt)::numeric
                 / nullif(count(*) FILTER (WHERE s.rub >= 4), 0), 4),
           round(count(*) FILTER (WHERE s.rub >= 4 AND s.named_flk AND s.fast_vardkontakt)::numeric
                 / nullif(count(*) FILTER (WHERE s.rub >= 4), 0), 4),
           count(*) FILTER (WHERE s.patient_key IS NOT NULL AND s.rub IS NULL),
           count(*) FILTER (WHERE s.g3_resident),
           count(*) FILTER (WHERE s.g3_resident AND s.named_flk),
           count(*) FILTER (WHERE s.g3_resident AND s.fast_vardkontakt),
           count(*) FILTER (WHERE s.g3_resident AND s.named_flk AND s.fast_vardkontakt),
           round(count(*) FILTER (WHERE s.g3_resident AND s.named_flk)::numeric
                 / nullif(count(*) FILTER (WHERE s.g3_resident), 0), 4),
           round(count(*) FILTER (WHERE s.g3_resident AND s.fast_vardkontakt)::numeric
                 / nullif(count(*) FILTER (WHERE s.g3_resident), 0), 4),
           round(count(*) FILTER (WHERE s.g3_resident AND s.named_flk AND s.fast_vardkontakt)::numeric
                 / nullif(count(*) FILTER (WHERE s.g3_resident), 0), 4)
    FROM listing.care_unit u
    LEFT JOIN s ON s.listed_unit = u.hsa_id
    GROUP BY u.hsa_id, u.region_code
$$;

CREATE VIEW listing.fasta_kontakter_kpi_region AS SELECT * FROM listing.fasta_kontakter_kpi_region_on(current_date);
CREATE VIEW listing.fasta_kontakter_kpi_unit AS SELECT * FROM listing.fasta_kontakter_kpi_unit_on(current_date);

REVOKE EXECUTE ON FUNCTION listing.fasta_kontakter_kpi_region_on(date), listing.fasta_kontakter_kpi_unit_on(date)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION listing.fasta_kontakter_kpi_region_on(date), listing.fasta_kontakter_kpi_unit_on(date)
    TO flk_reader;
GRANT SELECT ON listing.fasta_kontakter_kpi_region, listing.fasta_kontakter_kpi_unit TO flk_reader;
