-- Continuity: a third cohort, 'rub45' — the patients whose current RUB band (the latest ACG risk
-- assessment, risk.assessed.v1) is 4 or 5, the chronic and complex patients for whom relational
-- continuity is to be prioritised. Aggregated per region, unit and doctor beside 'all' and 'sabo'.
--
-- * aggregate_snapshot accepts cohort 'rub45';
-- * patient_snapshot says whether the patient was in it on the day (for the same patients' change);
-- * goal_comparison groups the same patients into 'rub45' as well. The cohort has no national
--   target: its rows have goal NULL (no target, no verdict) but every figure the goal rows have
--   (cohort sizes, intervals, the change's interval, significance, the same patients' change).
-- The function is replaced as in 0003 apart from the cohorts of the same-patients pairs.

ALTER TABLE continuity.aggregate_snapshot DROP CONSTRAINT aggregate_snapshot_cohort_check;
ALTER TABLE continuity.aggregate_snapshot
    ADD CONSTRAINT aggregate_snapshot_cohort_check CHECK (cohort IN ('all', 'sabo', 'rub45'));

ALTER TABLE continuity.patient_snapshot
    ADD COLUMN rub45 boolean NOT NULL DEFAULT false;      -- RUB band 4 or 5 on the day

CREATE OR REPLACE FUNCTION continuity.goal_comparison(baseline date, now_date date DEFAULT NULL)
RETURNS TABLE (
    level text, entity_id text, care_unit_id text, cohort text,
    contacts text,                        -- 'doctor' | 'total'
    goal text,                            -- 'G2' (cohort all), 'G4' (cohort sabo, doctor), else NULL (rub45: no target)
    target_change double precision,       -- 0.20 for G2; 0.0 (a significant increase) for G4
    baseline_date date, now_date date,    -- the snapshot dates compared (latest on or before each)
    window_months integer,                -- NULL when the two windows differ in length
    baseline_complete boolean, baseline_coverage double precision,
    now_complete boolean, now_coverage double precision,
    comparable boolean,                   -- both windows complete and of equal length
    baseline_n integer, baseline_mean double precision, baseline_ci_low double precision, baseline_ci_high double precision,
    now_n integer, now_mean double precision, now_ci_low double precision, now_ci_high double precision,
    change double precision, change_ci_low double precision, change_ci_high double precision,  -- 0.2 = +20 %
    significant boolean,                  -- the change's interval excludes 0
    panel_n integer, panel_baseline_mean double precision, panel_now_mean double precision,
    panel_change double precision, panel_ci_low double precision, panel_ci_high double precision,
    panel_significant boolean,
    verdict text  -- met | not_met | inconclusive | incomplete_window | too_few_patients | no_data (goal rows)
) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH days AS (
        SELECT (SELECT max(snapshot_date) FROM continuity.aggregate_snapshot WHERE snapshot_date <= baseline) AS b,
               (SELECT max(snapshot_date) FROM continuity.aggregate_snapshot
                WHERE now_date IS NULL OR snapshot_date <= now_date) AS n
    ), now_rows AS (
        SELECT g.* FROM continuity.goal_series g JOIN days ON g.snapshot_date = days.n
    ), base_rows AS (
        SELECT g.* FROM continuity.goal_series g JOIN days ON g.snapshot_date = days.b
    ), pairs AS (          -- the same patients, eligible at both dates, grouped as they are now
        SELECT lvl.level, lvl.entity_id, lvl.care_unit_id, c.cohort, v.contacts, v.x0, v.x1
        FROM days
        JOIN continuity.patient_snapshot p1 ON p1.snapshot_date = days.n
        JOIN continuity.patient_snapshot p0 ON p0.snapshot_date = days.b AND p0.patient_key = p1.patient_key
        CROSS JOIN LATERAL (VALUES ('doctor', p0.coc_doctor, p1.coc_doctor),
                                   ('total', p0.coc_total, p1.coc_total)) AS v(contacts, x0, x1)
        CROSS JOIN LATERAL (VALUES ('region', p1.region_code, ''), ('unit', p1.care_unit_id, p1.care_unit_id),
                                   ('doctor', p1.doctor_id, p1.care_unit_id)) AS lvl(level, entity_id, care_unit_id)
        CROSS JOIN LATERAL (SELECT 'all' AS cohort UNION ALL SELECT 'sabo' WHERE p1.sabo
                            UNION ALL SELECT 'rub45' WHERE p1.rub45) AS c
        WHERE days.b < days.n AND v.x0 IS NOT NULL AND v.x1 IS NOT NULL AND lvl.entity_id IS NOT NULL
    ), panel AS (
        SELECT p.level, p.entity_id, p.care_unit_id, p.cohort, p.contacts, count(*)::integer AS n,
               avg(p.x0) AS m0, avg(p.x1) AS m1, var_samp(p.x0) AS s00, var_samp(p.x1) AS s11,
               covar_samp(p.x0, p.x1) AS s01
        FROM pairs p GROUP BY 1, 2, 3, 4, 5
    ), compared AS (
        SELECT nr.level, nr.entity_id, nr.care_unit_id, nr.cohort, nr.contacts,
               CASE WHEN nr.cohort = 'all' THEN 'G2' WHEN nr.cohort = 'sabo' AND nr.contacts = 'doctor' THEN 'G4' END AS goal,
               CASE WHEN nr.cohort = 'all' THEN 0.20::double precision
                    WHEN nr.cohort = 'sabo' AND nr.contacts = 'doctor' THEN 0.0::double precision END AS target,
               br.snapshot_date AS b_date, nr.snapshot_date AS n_date,
               CASE WHEN br.window_months = nr.window_months THEN nr.window_months END AS window_months,
               br.window_complete AS b_complete, br.coverage_fraction AS b_coverage,
               nr.window_complete AS n_complete, nr.coverage_fraction AS n_coverage,
               COALESCE(br.window_complete AND nr.window_complete AND br.window_months = nr.window_months
                        AND br.snapshot_date < nr.snapshot_date, false) AS comparable,
               br.n AS b_n, br.mean AS b_mean, br.ci_low AS b_low, br.ci_high AS b_high,
               nr.n AS n_n, nr.mean AS n_mean, nr.ci_low AS n_low, nr.ci_high AS n_high,
               CASE WHEN br.mean > 0 AND nr.mean > 0 AND br.sd IS NOT NULL AND nr.sd IS NOT NULL
                    THEN ln(nr.mean / br.mean) END AS lr,
               CASE WHEN br.mean > 0 AND nr.mean > 0 AND br.sd IS NOT NULL AND nr.sd IS NOT NULL
                    THEN nr.sd ^ 2 / (nr.n * nr.mean ^ 2) + br.sd ^ 2 / (br.n * br.mean ^ 2) END AS lr_var,
               pa.n AS p_n, pa.m0 AS p_m0, pa.m1 AS p_m1,
               CASE WHEN pa.n >= 2 AND pa.m0 > 0 AND pa.m1 > 0 THEN ln(pa.m1 / pa.m0) END AS p_lr,
               CASE WHEN pa.n >= 2 AND pa.m0 > 0 AND pa.m1 > 0
                    THEN (pa.s11 / pa.m1 ^ 2 + pa.s00 / pa.m0 ^ 2 - 2 * pa.s01 / (pa.m1 * pa.m0)) / pa.n END AS p_var
        FROM now_rows nr
        LEFT JOIN base_rows br USING (level, entity_id, care_unit_id, cohort, contacts)
        LEFT JOIN panel pa USING (level, entity_id, care_unit_id, cohort, contacts)
    ), intervals AS (
        SELECT c.*,
               exp(c.lr) - 1 AS ch,
               exp(c.lr - 1.959963984540054 * sqrt(greatest(c.lr_var, 0))) - 1 AS ch_low,
               exp(c.lr + 1.959963984540054 * sqrt(greatest(c.lr_var, 0))) - 1 AS ch_high,
               exp(c.p_lr) - 1 AS p_ch,
               exp(c.p_lr - 1.959963984540054 * sqrt(greatest(c.p_var, 0))) - 1 AS p_low,
               exp(c.p_lr + 1.959963984540054 * sqrt(greatest(c.p_var, 0))) - 1 AS p_high
        FROM compared c
    )
    SELECT i.level, i.entity_id, i.care_unit_id, i.cohort, i.contacts, i.goal, i.target,
           i.b_date, i.n_date, i.window_months, i.b_complete, i.b_coverage, i.n_complete, i.n_coverage,
           i.comparable, i.b_n, i.b_mean, i.b_low, i.b_high, i.n_n, i.n_mean, i.n_low, i.n_high,
           i.ch, i.ch_low, i.ch_high, (i.ch_low > 0 OR i.ch_high < 0),
           i.p_n, i.p_m0, i.p_m1, i.p_ch, i.p_low, i.p_high, (i.p_low > 0 OR i.p_high < 0),
           CASE WHEN i.goal IS NULL THEN NULL
                WHEN i.b_mean IS NULL OR i.n_mean IS NULL THEN 'no_data'
                WHEN NOT i.comparable THEN 'incomplete_window'
                WHEN least(i.b_n, i.n_n) < 30 THEN 'too_few_patients'
                WHEN i.ch IS NULL THEN 'no_data'
                WHEN i.target = 0 THEN CASE WHEN i.ch_low > 0 THEN 'met' WHEN i.ch_high <= 0 THEN 'not_met'
                                            ELSE 'inconclusive' END
                WHEN i.ch_low >= i.target THEN 'met'
                WHEN i.ch_high < i.target THEN 'not_met'
                ELSE 'inconclusive' END
    FROM intervals i
$$;
