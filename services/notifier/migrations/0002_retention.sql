-- Retention (docs/threat-model.md §4): a resolved care gap keeps its unit, cause, RUB band and
-- dates for the reports, and loses its patient key once it is older than the retention
-- (FLK_NOTIFIER_RETENTION_DAYS). Open gaps always keep theirs.
ALTER TABLE notifier.care_gap ALTER COLUMN patient_key DROP NOT NULL;
ALTER TABLE notifier.care_gap ADD CONSTRAINT care_gap_open_has_patient
    CHECK (resolved_at IS NOT NULL OR patient_key IS NOT NULL);
