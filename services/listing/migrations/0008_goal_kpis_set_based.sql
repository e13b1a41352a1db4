-- The daily goal-KPI snapshot, set-based (issue 15): `listing.record_goal_kpis(date)` took ≈ 45 s per
-- day at region size and grew with persons × declines.
--
-- Where the time went (EXPLAIN of listing.person_goal_status_on, 0004, on 290 000 persons; EXPLAIN
-- ANALYZE on 30 000, docs/benchmarks.md): a nested loop over every person, with correlated subqueries
-- for the FLK assignments, declines and SÄBO residences (an index probe each, ~0.2 ms per person for
-- the assignments' GiST index). The decline subquery cannot use an index (flk_decline has only a
-- partial index on open declines, and a past day needs the closed ones too), so it is a sequential
-- scan of flk_decline per person: persons × declines rows read, three times per snapshot (region,
-- unit and list each call the per-person function). The planner's cost estimate (≈ 1.3e8) also
-- switches JIT on.
--
-- Now: each period table is read once, filtered to the periods containing the day and grouped per
-- person, and hash-joined to the persons: a sequential scan of each table, linear in its rows. The
-- function keeps its name, signature and results — every KPI of every goal_kpi_*_on function, the
-- views, the *_history views, the fasta_kontakter_* functions (0007) and record_goal_kpis read it —
-- so nothing that calls it changes, and the read-only role's grants are untouched (CREATE OR REPLACE
-- keeps them). tests/integration/listing/test_goal_kpis_set_based.py proves the results equal to the
-- 0004 definition's on varied registers for many days, including every day a period starts or ends.
--
-- Definitions are those of 0002/0004, unchanged:
--   named FLK / fictive   an FLK assignment whose period contains the day, on a doctor's / fictive list
--   declined              a decline with start_on <= day < end_on (or open), and no named FLK
--   sabo                  a SÄBO residence period contains the day; g3_resident when one of them has
--                         the main-care qualifier true or not recorded; main_care_unknown when none is
--                         true and one is not recorded
CREATE OR REPLACE FUNCTION listing.person_goal_status_on(on_date date)
RETURNS TABLE (
    patient_key          text,
    home_region          text,
    in_population        boolean,  -- folkbokförd in home_region on the date
    alive_resident       boolean,  -- neither deceased nor emigrated on the date
    listed_unit          text,
    named_flk            boolean,
    declined             boolean,  -- F7, and no named FLK
    fictive_only         boolean,  -- F3: only on a fictive list, not declined
    sabo                 boolean,  -- lives in a SÄBO on the date
    g3_resident          boolean,  -- sabo, and gets main care there or it is not recorded
    main_care_unknown    boolean   -- g3_resident only because the qualifier is not recorded
) LANGUAGE sql STABLE AS $$
    WITH assigned AS (
        SELECT x.patient_key,
               bool_or(x.list_kind = 'doctor') AS named,
               bool_or(x.list_kind = 'fictive') AS fictive
        FROM listing.flk_assignment x
        WHERE x.period @> on_date
        GROUP BY x.patient_key
    ), declined AS (
        SELECT DISTINCT y.patient_key
        FROM listing.flk_decline y
        WHERE y.start_on <= on_date AND (y.end_on IS NULL OR y.end_on > on_date)
    ), resident AS (
        SELECT z.patient_key,
               bool_or(z.main_care_in_residence) AS here,
               bool_or(z.main_care_in_residence IS NULL) AS unknown
        FROM listing.sabo_residence z
        WHERE z.period @> on_date
        GROUP BY z.patient_key
    ), listed AS (
        SELECT l.patient_key, l.care_unit_id
        FROM listing.listing l
        WHERE l.period @> on_date  -- at most one per person (listing_no_overlap)
    )
    SELECT p.patient_key,
           p.home_region,
           coalesce(p.population_status = 'folkbokford' OR p.status_date > on_date, false),
           coalesce(p.population_status NOT IN ('deceased', 'emigrated') OR p.status_date > on_date, false),
           l.care_unit_id,
           coalesce(a.named, false),
           NOT coalesce(a.named, false) AND d.patient_key IS NOT NULL,
           NOT coalesce(a.named, false) AND d.patient_key IS NULL AND coalesce(a.fictive, false),
           r.patient_key IS NOT NULL,
           coalesce(r.here, false) OR coalesce(r.unknown, false),
           NOT coalesce(r.here, false) AND coalesce(r.unknown, false)
    FROM listing.person p
    LEFT JOIN listed l ON l.patient_key = p.patient_key
    LEFT JOIN assigned a ON a.patient_key = p.patient_key
    LEFT JOIN declined d ON d.patient_key = p.patient_key
    LEFT JOIN resident r ON r.patient_key = p.patient_key
$$;

-- The per-region, per-unit and per-list aggregates (0004's queries, unchanged) become PL/pgSQL with
-- plan_cache_mode = force_custom_plan: a LANGUAGE sql function is planned with the date as an unknown
-- parameter, and the planner then guessed ~750 persons per day (a default selectivity for `period @>
-- $1`) and sorted and nested-looped as for a handful of rows; planned with the date's value, it
-- expects the 260 000 it gets and hashes. work_mem 64MB keeps the per-person hash tables of a region
-- (≈ 30 MB at 290 000 persons) in memory; a larger register spills to disk in batches, still linear.
-- They keep SECURITY DEFINER, the search path and their grants (CREATE OR REPLACE); record_goal_kpis
-- (0002) calls them unchanged.
CREATE OR REPLACE FUNCTION listing.goal_kpi_region_on(on_date date)
RETURNS TABLE (
    region_code                 text,
    population                  bigint,
    listed                      bigint,
    with_named_flk              bigint,
    listed_with_named_flk       bigint,
    listed_declined             bigint,
    listed_on_fictive_list_only bigint,
    listed_without_flk          bigint,
    g1_share_of_population      numeric,
    g1_share_of_listed          numeric,
    g1_target                   numeric,
    sabo_residents              bigint,
    sabo_with_named_flk         bigint,
    sabo_declined               bigint,
    sabo_main_care_elsewhere    bigint,
    g3_residents                bigint,
    g3_with_named_flk           bigint,
    g3_declined                 bigint,
    g3_main_care_unknown        bigint,
    g3_share                    numeric,
    g3_target                   numeric
) LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan SET work_mem = '64MB' AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT s.home_region,
               count(*),
               count(*) FILTER (WHERE s.listed_unit IS NOT NULL),
               count(*) FILTER (WHERE s.named_flk),
               count(*) FILTER (WHERE s.named_flk AND s.listed_unit IS NOT NULL),
               count(*) FILTER (WHERE s.declined AND s.listed_unit IS NOT NULL),
               count(*) FILTER (WHERE s.fictive_only AND s.listed_unit IS NOT NULL),
               count(*) FILTER (WHERE s.listed_unit IS NOT NULL AND NOT (s.named_flk OR s.declined OR s.fictive_only)),
               round(count(*) FILTER (WHERE s.named_flk)::numeric / nullif(count(*), 0), 4),
               round(count(*) FILTER (WHERE s.named_flk AND s.listed_unit IS NOT NULL)::numeric
                     / nullif(count(*) FILTER (WHERE s.listed_unit IS NOT NULL), 0), 4),
               0.55,
               count(*) FILTER (WHERE s.sabo),
               count(*) FILTER (WHERE s.sabo AND s.named_flk),
               count(*) FILTER (WHERE s.sabo AND s.declined),
               count(*) FILTER (WHERE s.sabo AND NOT s.g3_resident),
               count(*) FILTER (WHERE s.g3_resident),
               count(*) FILTER (WHERE s.g3_resident AND s.named_flk),
               count(*) FILTER (WHERE s.g3_resident AND s.declined),
               count(*) FILTER (WHERE s.main_care_unknown),
               round(count(*) FILTER (WHERE s.g3_resident AND s.named_flk)::numeric
                     / nullif(count(*) FILTER (WHERE s.g3_resident), 0), 4),
               0.80
        FROM listing.person_goal_status_on(on_date) s
        WHERE s.in_population
        GROUP BY s.home_region;
END $$;

CREATE OR REPLACE FUNCTION listing.goal_kpi_unit_on(on_date date)
RETURNS TABLE (
    care_unit_id             text,
    region_code              text,
    listed                   bigint,
    with_named_flk           bigint,
    declined                 bigint,
    on_fictive_list_only     bigint,
    without_flk              bigint,
    g1_share_of_listed       numeric,
    g1_target                numeric,
    sabo_residents           bigint,
    sabo_with_named_flk      bigint,
    sabo_declined            bigint,
    sabo_main_care_elsewhere bigint,
    g3_residents             bigint,
    g3_with_named_flk        bigint,
    g3_declined              bigint,
    g3_main_care_unknown     bigint,
    g3_share                 numeric,
    g3_target                numeric
) LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan SET work_mem = '64MB' AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        WITH s AS (
            SELECT * FROM listing.person_goal_status_on(on_date) WHERE alive_resident AND listed_unit IS NOT NULL
        )
        SELECT u.hsa_id,
               u.region_code,
               count(s.patient_key),
               count(*) FILTER (WHERE s.named_flk),
               count(*) FILTER (WHERE s.declined),
               count(*) FILTER (WHERE s.fictive_only),
               count(*) FILTER (WHERE s.patient_key IS NOT NULL AND NOT (s.named_flk OR s.declined OR s.fictive_only)),
               round(count(*) FILTER (WHERE s.named_flk)::numeric / nullif(count(s.patient_key), 0), 4),
               0.55,
               count(*) FILTER (WHERE s.sabo),
               count(*) FILTER (WHERE s.sabo AND s.named_flk),
               count(*) FILTER (WHERE s.sabo AND s.declined),
               count(*) FILTER (WHERE s.sabo AND NOT s.g3_resident),
               count(*) FILTER (WHERE s.g3_resident),
               count(*) FILTER (WHERE s.g3_resident AND s.named_flk),
               count(*) FILTER (WHERE s.g3_resident AND s.declined),
               count(*) FILTER (WHERE s.main_care_unknown),
               round(count(*) FILTER (WHERE s.g3_resident AND s.named_flk)::numeric
                     / nullif(count(*) FILTER (WHERE s.g3_resident), 0), 4),
               0.80
        FROM listing.care_unit u
        LEFT JOIN s ON s.listed_unit = u.hsa_id
        GROUP BY u.hsa_id, u.region_code;
END $$;

CREATE OR REPLACE FUNCTION listing.goal_kpi_list_on(on_date date)
RETURNS TABLE (
    list_id                  text,
    care_unit_id             text,
    region_code              text,
    kind                     text,
    display_name             text,
    practitioner_id          text,
    role_active              boolean,
    counts_as_named_flk      boolean,
    patients                 bigint,
    sabo_patients            bigint,
    g3_patients              bigint,
    unit_listed              bigint,
    unit_sabo_residents      bigint,
    unit_g3_residents        bigint,
    share_of_unit_listed     numeric,
    share_of_unit_sabo       numeric,
    share_of_unit_g3         numeric
) LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan SET work_mem = '64MB' AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        WITH s AS (
            SELECT * FROM listing.person_goal_status_on(on_date) WHERE alive_resident AND listed_unit IS NOT NULL
        ), unit_totals AS (
            SELECT listed_unit, count(*) AS listed, count(*) FILTER (WHERE sabo) AS sabo,
                   count(*) FILTER (WHERE g3_resident) AS g3
            FROM s GROUP BY listed_unit
        ), on_list AS (
            SELECT x.list_id, count(*) AS patients, count(*) FILTER (WHERE s.sabo) AS sabo,
                   count(*) FILTER (WHERE s.g3_resident) AS g3
            FROM listing.flk_assignment x
            JOIN s ON s.patient_key = x.patient_key AND s.listed_unit = x.care_unit_id
            WHERE x.period @> on_date
            GROUP BY x.list_id
        )
        SELECT d.list_id,
               d.care_unit_id,
               u.region_code,
               d.kind,
               d.display_name,
               r.practitioner_id,
               coalesce(r.start_on <= on_date AND (r.end_on IS NULL OR r.end_on > on_date), false),
               d.kind = 'doctor',
               coalesce(o.patients, 0),
               coalesce(o.sabo, 0),
               coalesce(o.g3, 0),
               coalesce(t.listed, 0),
               coalesce(t.sabo, 0),
               coalesce(t.g3, 0),
               round(coalesce(o.patients, 0)::numeric / nullif(t.listed, 0), 4),
               round(coalesce(o.sabo, 0)::numeric / nullif(t.sabo, 0), 4),
               round(coalesce(o.g3, 0)::numeric / nullif(t.g3, 0), 4)
        FROM listing.doctor_list d
        LEFT JOIN listing.care_unit u ON u.hsa_id = d.care_unit_id
        LEFT JOIN listing.practitioner_role r ON r.role_id = d.role_id
        LEFT JOIN on_list o ON o.list_id = d.list_id
        LEFT JOIN unit_totals t ON t.listed_unit = d.care_unit_id;
END $$;
