-- A second kind of care gap (issue 13, item 6): the fast-vårdkontakt gap, where the region's listing
-- profile requires a fast vårdkontakt for RUB high-need patients (Kalmar, seed 004). A patient may
-- have one open gap of each kind at their unit, so the one-open-gap index is per kind. Existing rows
-- are FLK gaps (the default). The alert path's view and the reporting views get the kind (no patient
-- key, as before); an alert records how many of its gaps are of each kind, so its text can say
-- what the patients lack.
ALTER TABLE notifier.care_gap ADD COLUMN kind text NOT NULL DEFAULT 'fast_lakarkontakt'
    CHECK (kind IN ('fast_lakarkontakt', 'fast_vardkontakt'));

DROP INDEX notifier.care_gap_one_open_per_patient_and_unit;
CREATE UNIQUE INDEX care_gap_one_open_per_patient_unit_and_kind ON notifier.care_gap (patient_key, care_unit_id, kind)
    WHERE resolved_at IS NULL;

CREATE OR REPLACE VIEW notifier.open_care_gap_for_alerting AS
    SELECT gap_id, care_unit_id, cause, rub, sabo, opened_at, kind
    FROM notifier.care_gap
    WHERE resolved_at IS NULL;

CREATE OR REPLACE VIEW notifier.open_care_gaps_by_unit AS
    SELECT care_unit_id,
           count(*)                                                AS open_gaps,
           count(*) FILTER (WHERE sabo)                            AS open_gaps_sabo,
           count(*) FILTER (WHERE rub >= 4)                        AS open_gaps_rub_4_5,
           min(opened_at)                                          AS oldest_opened_at,
           count(*) FILTER (WHERE kind = 'fast_lakarkontakt')      AS open_gaps_fast_lakarkontakt,
           count(*) FILTER (WHERE kind = 'fast_vardkontakt')       AS open_gaps_fast_vardkontakt
    FROM notifier.care_gap
    WHERE resolved_at IS NULL
    GROUP BY care_unit_id;

CREATE OR REPLACE VIEW notifier.care_gap_history AS
    SELECT gap_id, care_unit_id, cause, rub, sabo, opened_at, resolved_at, resolution, kind
    FROM notifier.care_gap;

-- {"fast_lakarkontakt": n, "fast_vardkontakt": m} of the alert's own gaps; '{}' = an alert planned
-- before gap kinds existed (all FLK gaps).
ALTER TABLE notifier.alert ADD COLUMN gap_kinds jsonb NOT NULL DEFAULT '{}';
