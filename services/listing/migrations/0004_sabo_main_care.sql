-- G3 counts the SÄBO residents who get their main health care there (issue 13, item 8).
--
-- The goal (seed 001, Vårdval primärvård 14/21, quoting the national agreement God och nära vård):
-- "de som bor på SÄBO för äldre och som där får sin huvudsakliga hälso- och sjukvård ska andelen
-- som har en fast läkarkontakt utgöra minst 80 procent". `residence.recorded.v1` carries the
-- qualifier as the optional `main_care_in_residence`; the register keeps it per residence period:
--   * true  — the resident gets their main care in the residence: counted in G3;
--   * false — the resident gets it elsewhere: still a SÄBO resident (L7 exemptions, alerts), but
--             not in G3's population; shown as `sabo_main_care_elsewhere`;
--   * NULL  — not recorded (producers older than the field): counted in G3, as every resident was
--             before the field existed, and shown as `g3_main_care_unknown` so the region sees how
--             much of its denominator rests on that default. Excluding them instead would leave a
--             region whose municipalities do not send the field yet with no G3 figure at all.
-- On a day covered by several residence periods, one that counts in G3 makes the person count.
--
-- The goal KPIs (0002) keep their columns and get the G3 population beside the SÄBO residents:
--   sabo_residents, sabo_with_named_flk, sabo_declined  every SÄBO resident (as before)
--   sabo_main_care_elsewhere                            residents recorded as getting main care elsewhere
--   g3_residents, g3_with_named_flk, g3_declined        G3's population: main care there or not recorded
--   g3_main_care_unknown                                of g3_residents, those with the qualifier not recorded
--   g3_share                                            g3_with_named_flk / g3_residents (changed: was over all residents)
-- Per list: g3_patients, unit_g3_residents, share_of_unit_g3 beside the sabo_* columns.
--
-- Stored days (the *_daily tables) are rebuilt with the new columns; a day stored before this
-- migration had no qualifier for anybody, so its G3 population is its SÄBO residents, all of them
-- with the qualifier unknown, and its g3_share is unchanged — exactly what this definition gives.

ALTER TABLE listing.sabo_residence ADD COLUMN main_care_in_residence boolean;
COMMENT ON COLUMN listing.sabo_residence.main_care_in_residence IS
    'får sin huvudsakliga hälso- och sjukvård i boendet (G3); NULL = not recorded by the municipality';

-- ------------------------------------------------------------------ the legacy "now" views (0001)
CREATE OR REPLACE VIEW listing.person_now AS
SELECT p.patient_key,
       p.home_region,
       p.population_status,
       l.care_unit_id AS listed_unit,
       EXISTS (SELECT 1 FROM listing.flk_assignment a
               WHERE a.patient_key = p.patient_key AND a.end_on IS NULL AND a.list_kind = 'doctor'
                 AND a.start_on <= current_date) AS has_named_flk,
       EXISTS (SELECT 1 FROM listing.sabo_residence r
               WHERE r.patient_key = p.patient_key AND r.period @> current_date) AS sabo_now,
       EXISTS (SELECT 1 FROM listing.sabo_residence r
               WHERE r.patient_key = p.patient_key AND r.period @> current_date
                 AND r.main_care_in_residence IS DISTINCT FROM false) AS g3_resident_now
FROM listing.person p
LEFT JOIN listing.listing l ON l.patient_key = p.patient_key AND l.period @> current_date;

-- G3 views of 0001: their population is now G3's (main care in the residence, or not recorded).
CREATE OR REPLACE VIEW listing.kpi_g3_region AS
SELECT home_region AS region_code,
       count(*)                                AS sabo_residents,
       count(*) FILTER (WHERE has_named_flk)   AS with_named_flk,
       round(count(*) FILTER (WHERE has_named_flk)::numeric / nullif(count(*), 0), 4) AS share,
       0.80::numeric                           AS target
FROM listing.person_now
WHERE population_status = 'folkbokford' AND g3_resident_now
GROUP BY home_region;

CREATE OR REPLACE VIEW listing.kpi_g3_unit AS
SELECT n.listed_unit AS care_unit_id,
       u.region_code,
       count(*)                                  AS sabo_residents,
       count(*) FILTER (WHERE n.has_named_flk)   AS with_named_flk,
       round(count(*) FILTER (WHERE n.has_named_flk)::numeric / nullif(count(*), 0), 4) AS share,
       0.80::numeric                             AS target
FROM listing.person_now n
LEFT JOIN listing.care_unit u ON u.hsa_id = n.listed_unit
WHERE n.population_status = 'folkbokford' AND n.g3_resident_now AND n.listed_unit IS NOT NULL
GROUP BY n.listed_unit, u.region_code;

CREATE OR REPLACE VIEW listing.kpi_g3_doctor AS
WITH unit_sabo AS (
    SELECT listed_unit, count(*) AS sabo_residents FROM listing.person_now
    WHERE population_status = 'folkbokford' AND g3_resident_now AND listed_unit IS NOT NULL GROUP BY listed_unit
)
SELECT d.care_unit_id,
       d.list_id,
       r.practitioner_id,
       count(n.patient_key)                AS sabo_with_this_flk,
       coalesce(us.sabo_residents, 0)      AS unit_sabo_residents,
       round(count(n.patient_key)::numeric / nullif(us.sabo_residents, 0), 4) AS share_of_unit_sabo
FROM listing.doctor_list d
LEFT JOIN listing.practitioner_role r ON r.role_id = d.role_id
LEFT JOIN listing.flk_assignment a ON a.list_id = d.list_id AND a.end_on IS NULL AND a.start_on <= current_date
LEFT JOIN listing.person_now n ON n.patient_key = a.patient_key AND n.g3_resident_now AND n.population_status = 'folkbokford'
LEFT JOIN unit_sabo us ON us.listed_unit = d.care_unit_id
WHERE d.kind = 'doctor'
GROUP BY d.care_unit_id, d.list_id, r.practitioner_id, us.sabo_residents;

-- ------------------------------------------------------------------ the goal KPIs (0002), redefined
DROP VIEW listing.goal_kpi_region_history, listing.goal_kpi_unit_history, listing.goal_kpi_list_history;
DROP VIEW listing.goal_kpi_region, listing.goal_kpi_unit, listing.goal_kpi_list;
DROP FUNCTION listing.goal_kpi_region_on(date), listing.goal_kpi_unit_on(date), listing.goal_kpi_list_on(date);
DROP FUNCTION listing.person_goal_status_on(date);

CREATE FUNCTION listing.person_goal_status_on(on_date date)
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
    SELECT p.patient_key,
           p.home_region,
           coalesce(p.population_status = 'folkbokford' OR p.status_date > on_date, false),
           coalesce(p.population_status NOT IN ('deceased', 'emigrated') OR p.status_date > on_date, false),
           l.care_unit_id,
           coalesce(a.named, false),
           NOT coalesce(a.named, false) AND coalesce(d.declined, false),
           NOT coalesce(a.named, false) AND NOT coalesce(d.declined, false) AND coalesce(a.fictive, false),
           r.periods > 0,
           coalesce(r.here, false) OR coalesce(r.unknown, false),
           NOT coalesce(r.here, false) AND coalesce(r.unknown, false)
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
    CROSS JOIN LATERAL (
        SELECT count(*) AS periods,
               bool_or(z.main_care_in_residence) AS here,
               bool_or(z.main_care_in_residence IS NULL) AS unknown
        FROM listing.sabo_residence z
        WHERE z.patient_key = p.patient_key AND z.period @> on_date
    ) r
$$;
REVOKE EXECUTE ON FUNCTION listing.person_goal_status_on(date) FROM PUBLIC;

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
    sabo_main_care_elsewhere    bigint,
    g3_residents                bigint,
    g3_with_named_flk           bigint,
    g3_declined                 bigint,
    g3_main_care_unknown        bigint,
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
    GROUP BY s.home_region
$$;

CREATE FUNCTION listing.goal_kpi_unit_on(on_date date)
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
    GROUP BY u.hsa_id, u.region_code
$$;

-- Per list: shares of the unit's listed persons (G1), of its SÄBO residents, and of its G3 residents.
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
    g3_patients              bigint,
    unit_listed              bigint,
    unit_sabo_residents      bigint,
    unit_g3_residents        bigint,
    share_of_unit_listed     numeric,
    share_of_unit_sabo       numeric,
    share_of_unit_g3         numeric
) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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
    LEFT JOIN unit_totals t ON t.listed_unit = d.care_unit_id
$$;

CREATE VIEW listing.goal_kpi_region AS SELECT * FROM listing.goal_kpi_region_on(current_date);
CREATE VIEW listing.goal_kpi_unit AS SELECT * FROM listing.goal_kpi_unit_on(current_date);
CREATE VIEW listing.goal_kpi_list AS SELECT * FROM listing.goal_kpi_list_on(current_date);

-- ------------------------------------------------------------------ stored days, rebuilt with the new columns
ALTER TABLE listing.goal_kpi_region_daily RENAME TO goal_kpi_region_daily_0003;
ALTER TABLE listing.goal_kpi_region_daily_0003 RENAME CONSTRAINT goal_kpi_region_daily_pkey TO goal_kpi_region_daily_0003_pkey;
ALTER TABLE listing.goal_kpi_unit_daily RENAME TO goal_kpi_unit_daily_0003;
ALTER TABLE listing.goal_kpi_unit_daily_0003 RENAME CONSTRAINT goal_kpi_unit_daily_pkey TO goal_kpi_unit_daily_0003_pkey;
ALTER TABLE listing.goal_kpi_list_daily RENAME TO goal_kpi_list_daily_0003;
ALTER TABLE listing.goal_kpi_list_daily_0003 RENAME CONSTRAINT goal_kpi_list_daily_pkey TO goal_kpi_list_daily_0003_pkey;
DROP INDEX listing.goal_kpi_list_daily_unit_idx;

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

-- Days stored before the qualifier existed: every SÄBO resident had it unknown (so counted in G3).
INSERT INTO listing.goal_kpi_region_daily
    SELECT o.snapshot_on, o.region_code, o.population, o.listed, o.with_named_flk, o.listed_with_named_flk,
           o.listed_declined, o.listed_on_fictive_list_only, o.listed_without_flk, o.g1_share_of_population,
           o.g1_share_of_listed, o.g1_target, o.sabo_residents, o.sabo_with_named_flk, o.sabo_declined,
           0, o.sabo_residents, o.sabo_with_named_flk, o.sabo_declined, o.sabo_residents,
           o.g3_share, o.g3_target, o.computed_at
    FROM listing.goal_kpi_region_daily_0003 o;
INSERT INTO listing.goal_kpi_unit_daily
    SELECT o.snapshot_on, o.care_unit_id, o.region_code, o.listed, o.with_named_flk, o.declined,
           o.on_fictive_list_only, o.without_flk, o.g1_share_of_listed, o.g1_target, o.sabo_residents,
           o.sabo_with_named_flk, o.sabo_declined,
           0, o.sabo_residents, o.sabo_with_named_flk, o.sabo_declined, o.sabo_residents,
           o.g3_share, o.g3_target, o.computed_at
    FROM listing.goal_kpi_unit_daily_0003 o;
INSERT INTO listing.goal_kpi_list_daily
    SELECT o.snapshot_on, o.list_id, o.care_unit_id, o.region_code, o.kind, o.display_name, o.practitioner_id,
           o.role_active, o.counts_as_named_flk, o.patients, o.sabo_patients, o.sabo_patients, o.unit_listed,
           o.unit_sabo_residents, o.unit_sabo_residents, o.share_of_unit_listed, o.share_of_unit_sabo,
           o.share_of_unit_sabo, o.computed_at
    FROM listing.goal_kpi_list_daily_0003 o;
DROP TABLE listing.goal_kpi_region_daily_0003, listing.goal_kpi_unit_daily_0003, listing.goal_kpi_list_daily_0003;

-- record_goal_kpis (0002) inserts `on_date, k.*, now()`: it fits the rebuilt tables unchanged.

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

-- ------------------------------------------------------------------ grants (aggregates only, as in 0002)
REVOKE EXECUTE ON FUNCTION listing.goal_kpi_region_on(date), listing.goal_kpi_unit_on(date),
                           listing.goal_kpi_list_on(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION listing.goal_kpi_region_on(date), listing.goal_kpi_unit_on(date),
                          listing.goal_kpi_list_on(date) TO flk_reader;
GRANT SELECT ON listing.goal_kpi_region, listing.goal_kpi_unit, listing.goal_kpi_list,
                listing.goal_kpi_region_daily, listing.goal_kpi_unit_daily, listing.goal_kpi_list_daily,
                listing.goal_kpi_region_history, listing.goal_kpi_unit_history, listing.goal_kpi_list_history
             TO flk_reader;
