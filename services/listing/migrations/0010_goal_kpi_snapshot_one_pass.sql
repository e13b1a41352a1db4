-- The daily goal-KPI snapshot in one pass over the persons (issue 15, fourth goal).
--
-- Before (0002's record_goal_kpis over 0008's functions): three INSERTs, each calling one of
-- goal_kpi_region_on, goal_kpi_unit_on and goal_kpi_list_on, each of which computes
-- listing.person_goal_status_on(day) again — three sequential scans of every period table, three hash
-- joins to every person, per snapshot (≈ 3 s of PostgreSQL CPU per day at region size, 290 000 persons;
-- docs/benchmarks.md).
--
-- Now: one INSERT statement whose WITH computes the per-person status once (a MATERIALIZED CTE, held
-- in a tuplestore) and feeds the three data-modifying CTEs that insert the region, unit and list rows.
-- The per-person definition stays listing.person_goal_status_on (0008; inlined by the planner), so there
-- is still one definition of who counts; the per-region, per-unit and per-list aggregates below are
-- those of 0008's goal_kpi_*_on, column for column. The live views and the *_history views keep using
-- goal_kpi_*_on; tests/integration/listing/test_goal_kpis_set_based.py proves a stored snapshot equal to
-- both those functions and 0004's per-person reference on many days, so the two copies cannot drift
-- apart unnoticed.
--
-- The old day's rows are deleted in separate statements before the insert (sub-statements of one
-- statement run on one snapshot, in no defined order; a delete and an insert of the same key must not
-- share one). Same signature, same result (rows stored), same grants (CREATE OR REPLACE keeps them).
CREATE OR REPLACE FUNCTION listing.record_goal_kpis(on_date date DEFAULT current_date) RETURNS integer
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan SET work_mem = '64MB' AS $$
#variable_conflict use_column
DECLARE
    stored integer;
BEGIN
    DELETE FROM listing.goal_kpi_region_daily WHERE snapshot_on = on_date;
    DELETE FROM listing.goal_kpi_unit_daily WHERE snapshot_on = on_date;
    DELETE FROM listing.goal_kpi_list_daily WHERE snapshot_on = on_date;
    WITH status AS MATERIALIZED (
        SELECT * FROM listing.person_goal_status_on(on_date)
    ), s AS (  -- the unit and list figures count listed persons alive and resident
        SELECT * FROM status WHERE alive_resident AND listed_unit IS NOT NULL
    ), region_rows AS (
        INSERT INTO listing.goal_kpi_region_daily
        SELECT on_date,
               p.home_region,
               count(*),
               count(*) FILTER (WHERE p.listed_unit IS NOT NULL),
               count(*) FILTER (WHERE p.named_flk),
               count(*) FILTER (WHERE p.named_flk AND p.listed_unit IS NOT NULL),
               count(*) FILTER (WHERE p.declined AND p.listed_unit IS NOT NULL),
               count(*) FILTER (WHERE p.fictive_only AND p.listed_unit IS NOT NULL),
               count(*) FILTER (WHERE p.listed_unit IS NOT NULL AND NOT (p.named_flk OR p.declined OR p.fictive_only)),
               round(count(*) FILTER (WHERE p.named_flk)::numeric / nullif(count(*), 0), 4),
               round(count(*) FILTER (WHERE p.named_flk AND p.listed_unit IS NOT NULL)::numeric
                     / nullif(count(*) FILTER (WHERE p.listed_unit IS NOT NULL), 0), 4),
               0.55,
               count(*) FILTER (WHERE p.sabo),
               count(*) FILTER (WHERE p.sabo AND p.named_flk),
               count(*) FILTER (WHERE p.sabo AND p.declined),
               count(*) FILTER (WHERE p.sabo AND NOT p.g3_resident),
               count(*) FILTER (WHERE p.g3_resident),
               count(*) FILTER (WHERE p.g3_resident AND p.named_flk),
               count(*) FILTER (WHERE p.g3_resident AND p.declined),
               count(*) FILTER (WHERE p.main_care_unknown),
               round(count(*) FILTER (WHERE p.g3_resident AND p.named_flk)::numeric
                     / nullif(count(*) FILTER (WHERE p.g3_resident), 0), 4),
               0.80,
               now()
        FROM status p
        WHERE p.in_population
        GROUP BY p.home_region
        RETURNING 1
    ), unit_rows AS (
        INSERT INTO listing.goal_kpi_unit_daily
        SELECT on_date,
               u.hsa_id,
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
               0.80,
               now()
        FROM listing.care_unit u
        LEFT JOIN s ON s.listed_unit = u.hsa_id
        GROUP BY u.hsa_id, u.region_code
        RETURNING 1
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
    ), list_rows AS (
        INSERT INTO listing.goal_kpi_list_daily
        SELECT on_date,
               d.list_id,
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
               round(coalesce(o.g3, 0)::numeric / nullif(t.g3, 0), 4),
               now()
        FROM listing.doctor_list d
        LEFT JOIN listing.care_unit u ON u.hsa_id = d.care_unit_id
        LEFT JOIN listing.practitioner_role r ON r.role_id = d.role_id
        LEFT JOIN on_list o ON o.list_id = d.list_id
        LEFT JOIN unit_totals t ON t.listed_unit = d.care_unit_id
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM region_rows) + (SELECT count(*) FROM unit_rows) + (SELECT count(*) FROM list_rows)
    INTO stored;
    RETURN stored;
END $$;
