-- Continuity: daily snapshots of the aggregates (region, unit, doctor; cohorts 'all' and 'sabo'),
-- written by the continuity worker, read by Grafana (role flk_reader) for trends and "now vs baseline".
CREATE SCHEMA IF NOT EXISTS continuity;
GRANT USAGE ON SCHEMA continuity TO flk_reader;

CREATE TABLE continuity.aggregate_snapshot (
    snapshot_date      date        NOT NULL,              -- the "as of" date of the indices
    level              text        NOT NULL CHECK (level IN ('region', 'unit', 'doctor')),
    entity_id          text        NOT NULL,              -- region code, unit HSA-id or doctor (FLK) HSA-id
    care_unit_id       text        NOT NULL DEFAULT '',   -- the unit ('' for the region)
    cohort             text        NOT NULL CHECK (cohort IN ('all', 'sabo')),
    listed_patients    integer     NOT NULL,
    eligible_doctor    integer     NOT NULL,              -- SKR: listed, >= min visits at the listing unit
    mean_coc_doctor    double precision,                  -- NULL when nobody is eligible
    eligible_total     integer     NOT NULL,
    mean_coc_total     double precision,
    coc_doctor_buckets integer[]   NOT NULL,              -- 10 buckets: [0,0.1) ... [0.9,1.0]
    coc_total_buckets  integer[]   NOT NULL,
    computed_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (snapshot_date, level, care_unit_id, entity_id, cohort)
);
CREATE INDEX aggregate_snapshot_entity_idx ON continuity.aggregate_snapshot (level, entity_id, cohort, snapshot_date);

-- "Now vs baseline" (G2/G4: +20 %): each entity's latest snapshot against its snapshot on the
-- baseline date (or the latest before it), with the % change of mean COC.
CREATE FUNCTION continuity.coc_vs_baseline(baseline date, now_date date DEFAULT NULL)
RETURNS TABLE (
    level text, entity_id text, care_unit_id text, cohort text,
    baseline_date date, now_date date,
    baseline_coc_doctor double precision, now_coc_doctor double precision, change_pct_doctor double precision,
    baseline_coc_total double precision, now_coc_total double precision, change_pct_total double precision,
    goal_met_doctor boolean, goal_met_total boolean
) LANGUAGE sql STABLE AS $$
    WITH now_rows AS (
        SELECT DISTINCT ON (s.level, s.care_unit_id, s.entity_id, s.cohort) s.*
        FROM continuity.aggregate_snapshot s
        WHERE now_date IS NULL OR s.snapshot_date <= now_date
        ORDER BY s.level, s.care_unit_id, s.entity_id, s.cohort, s.snapshot_date DESC
    ), base_rows AS (
        SELECT DISTINCT ON (s.level, s.care_unit_id, s.entity_id, s.cohort) s.*
        FROM continuity.aggregate_snapshot s
        WHERE s.snapshot_date <= baseline
        ORDER BY s.level, s.care_unit_id, s.entity_id, s.cohort, s.snapshot_date DESC
    )
    SELECT n.level, n.entity_id, n.care_unit_id, n.cohort,
           b.snapshot_date, n.snapshot_date,
           b.mean_coc_doctor, n.mean_coc_doctor,
           100.0 * (n.mean_coc_doctor - b.mean_coc_doctor) / NULLIF(b.mean_coc_doctor, 0),
           b.mean_coc_total, n.mean_coc_total,
           100.0 * (n.mean_coc_total - b.mean_coc_total) / NULLIF(b.mean_coc_total, 0),
           n.mean_coc_doctor >= 1.2 * b.mean_coc_doctor,
           n.mean_coc_total >= 1.2 * b.mean_coc_total
    FROM now_rows n
    LEFT JOIN base_rows b USING (level, care_unit_id, entity_id, cohort)
$$;

-- The latest snapshot per entity (for "current" panels).
CREATE VIEW continuity.latest_aggregates AS
    SELECT DISTINCT ON (level, care_unit_id, entity_id, cohort) *
    FROM continuity.aggregate_snapshot
    ORDER BY level, care_unit_id, entity_id, cohort, snapshot_date DESC;

GRANT SELECT ON continuity.aggregate_snapshot, continuity.latest_aggregates TO flk_reader;
GRANT EXECUTE ON FUNCTION continuity.coc_vs_baseline(date, date) TO flk_reader;
