-- Goal KPIs for the dashboards: G1 (named fast läkarkontakt, target 55 %) and G3 (SÄBO residents
-- with a named FLK, target 80 %), per region, per unit and per list (doctor), now and over time.
--
-- Computed as of any date from the register's periods: listings, FLK assignments, declines and
-- SÄBO residences are periods that are closed, never deleted (0001), so a past day can be
-- recomputed. Definitions (brief §5, rules F3, F7, P1):
--   * named FLK on D: an FLK assignment on a *doctor* list whose period contains D. A fictive list
--     ("<VC> Dr X", F3) is not one.
--   * region population on D: persons folkbokförda in the region (home_region) on D — a death,
--     emigration or move out of the region dated on or before D removes the person (P1). The
--     status date is what dates it; a later re-registration is not reconstructed for past days.
--   * unit and list: persons listed at the unit on D (responsibility period, L6) who are neither
--     deceased nor emigrated on D.
--   * lacking a named FLK is split into mutually exclusive counts: declined (F7: visible, counted
--     as lacking), only on a fictive list (F3), and none at all.
--   * SÄBO resident on D: a municipality residence period containing D.
--
-- Over time: listing.record_goal_kpis(D) stores D's rows in the *_daily tables (idempotent:
-- recomputing a day replaces it). `flk listing kpi-snapshot` runs it (daily from cron or a
-- systemd timer; `--from/--to` backfills past days from history). The *_history views are the
-- stored days plus today's live values while today has no snapshot yet.
--
-- Access: the read-only role (flk_reader, Grafana) reads aggregates only — the views, the daily
-- tables and the *_on(date) functions (SECURITY DEFINER: they read the register as its owner and
-- return counts, never a patient key). The per-person function is not granted to it.

-- ------------------------------------------------------------------ per person (internal)
CREATE FUNCTION listing.person_goal_status_on(on_date date)
RETURNS TABLE (
    patient_key    text,
    home_region    text,
    in_population  boolean,  -- folkbokförd in home_region on the date
    alive_resident boolean,  -- neither deceased nor emigrated on the date
    listed_unit    text,
    named_flk      boolean,
    declined       boolean,  -- F7, and no named FLK
    fictive_only   boolean,  -- F3: only on a fictive list, not declined
    sabo           boolean
) LANGUAGE sql STABLE AS $$
    SELECT p.patient_key,
           p.home_region,
           coalesce(p.population_status = 'folkbokford' OR p.status_date > on_date, false),
           coalesce(p.population_status NOT IN ('deceased', 'emigrated') OR p.status_date > on_date, false),
           l.care_unit_id,
           coalesce(a.named, false),
           NOT coalesce(a.named, false) AND coalesce(d.declined, false),
           NOT coalesce(a.named, false) AND NOT coalesce(d.declined, false) AND coalesce(a.fictive, false),
           EXISTS (SELECT 1 FROM listing.sabo_residence r WHERE r.patient_key = p.patient_key AND r.period @> on_date)
    FROM listing.person p
    LEFT JOIN listing.listing l ON l.patient_key = p.patient_key AND l.period @> on_date
    LEFT JOIN LATERAL (
        SELECT bool_or(x.list_kind = 'doctor') AS named, bool_or(x.list_kind = 'fictive') AS fictive
        FROM listing.flk_assignment x
        WHERE x.patient_key = p.patient_key AND x.period @> on_date
    ) a ON true
    LEFT JOIN LATERAL (
        SELECT true AS declined FROM listing.flk_decline y
        WHERE y.patient_key = p.patient_key AND y.start_on <= on_date AND (y.end_on IS NULL OR y.end_on > on_date)
        LIMIT 1
    ) d ON true
$$;
REVOKE EXECUTE ON FUNCTION listing.person_goal_status_on(date) FROM PUBLIC;

-- ------------------------------------------------------------------ per region
CREATE FUNCTION listing.goal_kpi_region_on(on_date date)
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
    g3_share                    numeric,
    g3_target                   numeric
) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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
           round(count(*) FILTER (WHERE s.sabo AND s.named_flk)::numeric / nullif(count(*) FILTER (WHERE s.sabo), 0), 4),
           0.80
    FROM listing.person_goal_status_on(on_date) s
    WHERE s.in_population
    GROUP BY s.home_region
$$;

-- ------------------------------------------------------------------ per unit (its listed persons)
CREATE FUNCTION listing.goal_kpi_unit_on(on_date date)
RETURNS TABLE (
    care_unit_id         text,
    region_code          text,
    listed               bigint,
    with_named_flk       bigint,
    declined             bigint,
    on_fictive_list_only bigint,
    without_flk          bigint,
    g1_share_of_listed   numeric,
    g1_target            numeric,
    sabo_residents       bigint,
    sabo_with_named_flk  bigint,
    sabo_declined        bigint,
    g3_share             numeric,
    g3_target            numeric
) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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
           round(count(*) FILTER (WHERE s.sabo AND s.named_flk)::numeric / nullif(count(*) FILTER (WHERE s.sabo), 0), 4),
           0.80
    FROM listing.care_unit u
    LEFT JOIN s ON s.listed_unit = u.hsa_id
    GROUP BY u.hsa_id, u.region_code
$$;

-- ------------------------------------------------------------------ per list (doctor lists and fictive lists)
-- A doctor list's patients are the unit's listed persons who have that doctor as a named FLK; a
-- fictive list's patients count as lacking an FLK (F3). Shares are of the unit's listed persons
-- (G1) and of its SÄBO residents (G3).
CREATE FUNCTION listing.goal_kpi_list_on(on_date date)
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
    unit_listed              bigint,
    unit_sabo_residents      bigint,
    share_of_unit_listed     numeric,
    share_of_unit_sabo       numeric
) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH s AS (
        SELECT * FROM listing.person_goal_status_on(on_date) WHERE alive_resident AND listed_unit IS NOT NULL
    ), unit_totals AS (
        SELECT listed_unit, count(*) AS listed, count(*) FILTER (WHERE sabo) AS sabo FROM s GROUP BY listed_unit
    ), on_list AS (
        SELECT x.list_id, count(*) AS patients, count(*) FILTER (WHERE s.sabo) AS sabo
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
           coalesce(t.listed, 0),
           coalesce(t.sabo, 0),
           round(coalesce(o.patients, 0)::numeric / nullif(t.listed, 0), 4),
           round(coalesce(o.sabo, 0)::numeric / nullif(t.sabo, 0), 4)
    FROM listing.doctor_list d
    LEFT JOIN listing.care_unit u ON u.hsa_id = d.care_unit_id
    LEFT JOIN listing.practitioner_role r ON r.role_id = d.role_id
    LEFT JOIN on_list o ON o.list_id = d.list_id
    LEFT JOIN unit_totals t ON t.listed_unit = d.care_unit_id
$$;

-- ------------------------------------------------------------------ now
CREATE VIEW listing.goal_kpi_region AS SELECT * FROM listing.goal_kpi_region_on(current_date);
CREATE VIEW listing.goal_kpi_unit AS SELECT * FROM listing.goal_kpi_unit_on(current_date);
CREATE VIEW listing.goal_kpi_list AS SELECT * FROM listing.goal_kpi_list_on(current_date);

-- ------------------------------------------------------------------ over time: daily snapshots
CREATE TABLE listing.goal_kpi_region_daily AS
    SELECT current_date AS snapshot_on, k.* FROM listing.goal_kpi_region_on(current_date) k WITH NO DATA;
ALTER TABLE listing.goal_kpi_region_daily ALTER COLUMN snapshot_on SET NOT NULL,
    ADD COLUMN computed_at timestamptz NOT NULL DEFAULT now(), ADD PRIMARY KEY (snapshot_on, region_code);

CREATE TABLE listing.goal_kpi_unit_daily AS
    SELECT current_date AS snapshot_on, k.* FROM listing.goal_kpi_unit_on(current_date) k WITH NO DATA;
ALTER TABLE listing.goal_kpi_unit_daily ALTER COLUMN snapshot_on SET NOT NULL,
    ADD COLUMN computed_at timestamptz NOT NULL DEFAULT now(), ADD PRIMARY KEY (snapshot_on, care_unit_id);

CREATE TABLE listing.goal_kpi_list_daily AS
    SELECT current_date AS snapshot_on, k.* FROM listing.goal_kpi_list_on(current_date) k WITH NO DATA;
ALTER TABLE listing.goal_kpi_list_daily ALTER COLUMN snapshot_on SET NOT NULL,
    ADD COLUMN computed_at timestamptz NOT NULL DEFAULT now(), ADD PRIMARY KEY (snapshot_on, list_id);
CREATE INDEX goal_kpi_list_daily_unit_idx ON listing.goal_kpi_list_daily (care_unit_id, snapshot_on);

-- Store one day's KPIs (replacing that day's earlier rows); the number of rows stored.
CREATE FUNCTION listing.record_goal_kpis(on_date date DEFAULT current_date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    stored integer := 0;
    n integer;
BEGIN
    DELETE FROM listing.goal_kpi_region_daily WHERE snapshot_on = on_date;
    DELETE FROM listing.goal_kpi_unit_daily WHERE snapshot_on = on_date;
    DELETE FROM listing.goal_kpi_list_daily WHERE snapshot_on = on_date;
    INSERT INTO listing.goal_kpi_region_daily SELECT on_date, k.*, now() FROM listing.goal_kpi_region_on(on_date) k;
    GET DIAGNOSTICS n = ROW_COUNT; stored := stored + n;
    INSERT INTO listing.goal_kpi_unit_daily SELECT on_date, k.*, now() FROM listing.goal_kpi_unit_on(on_date) k;
    GET DIAGNOSTICS n = ROW_COUNT; stored := stored + n;
    INSERT INTO listing.goal_kpi_list_daily SELECT on_date, k.*, now() FROM listing.goal_kpi_list_on(on_date) k;
    GET DIAGNOSTICS n = ROW_COUNT; stored := stored + n;
    RETURN stored;
END $$;
REVOKE EXECUTE ON FUNCTION listing.record_goal_kpis(date) FROM PUBLIC;

-- Grafana time series: the stored days, plus today live until today's snapshot is stored.
CREATE VIEW listing.goal_kpi_region_history AS
    SELECT * FROM listing.goal_kpi_region_daily
    UNION ALL
    SELECT current_date, k.*, now() FROM listing.goal_kpi_region_on(current_date) k
    WHERE NOT EXISTS (SELECT 1 FROM listing.goal_kpi_region_daily WHERE snapshot_on = current_date);

CREATE VIEW listing.goal_kpi_unit_history AS
    SELECT * FROM listing.goal_kpi_unit_daily
    UNION ALL
    SELECT current_date, k.*, now() FROM listing.goal_kpi_unit_on(current_date) k
    WHERE NOT EXISTS (SELECT 1 FROM listing.goal_kpi_unit_daily WHERE snapshot_on = current_date);

CREATE VIEW listing.goal_kpi_list_history AS
    SELECT * FROM listing.goal_kpi_list_daily
    UNION ALL
    SELECT current_date, k.*, now() FROM listing.goal_kpi_list_on(current_date) k
    WHERE NOT EXISTS (SELECT 1 FROM listing.goal_kpi_list_daily WHERE snapshot_on = current_date);

-- ------------------------------------------------------------------ grants (aggregates only)
REVOKE EXECUTE ON FUNCTION listing.goal_kpi_region_on(date), listing.goal_kpi_unit_on(date),
                           listing.goal_kpi_list_on(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION listing.goal_kpi_region_on(date), listing.goal_kpi_unit_on(date),
                          listing.goal_kpi_list_on(date) TO flk_reader;
GRANT SELECT ON listing.goal_kpi_region, listing.goal_kpi_unit, listing.goal_kpi_list,
                listing.goal_kpi_region_daily, listing.goal_kpi_unit_daily, listing.goal_kpi_list_daily,
                listing.goal_kpi_region_history, listing.goal_kpi_unit_history, listing.goal_kpi_list_history
             TO flk_reader;
