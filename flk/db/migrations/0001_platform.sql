-- Platform: audit log of every read of patient data, and the re-identification vault.
CREATE SCHEMA IF NOT EXISTS platform;
GRANT USAGE ON SCHEMA platform TO flk_reader;

-- Who read which patient's data, for which unit, what and why (patientdatalagen 4 kap. 3 §).
-- Patients are named by their pseudonymous key only.
CREATE TABLE platform.audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    actor        text        NOT NULL,               -- HSA-id (or service name) from the token's subject
    actor_role   text        NOT NULL,
    actor_units  text[]      NOT NULL DEFAULT '{}',  -- the units the token names
    unit_id      text,                               -- the unit whose patient data was read
    patient_key  text,                               -- pseudonymous patient key (NULL for unit-level reads)
    action       text        NOT NULL,               -- e.g. 'listing.patient.read'
    purpose      text,                               -- e.g. 'vard', 'uppfoljning'
    outcome      text        NOT NULL CHECK (outcome IN ('allowed', 'denied')),
    request_id   text
);
CREATE INDEX audit_log_patient_idx ON platform.audit_log (patient_key, occurred_at);
CREATE INDEX audit_log_actor_idx ON platform.audit_log (actor, occurred_at);

-- The audit log is append-only, even for the role that owns it.
CREATE FUNCTION platform.audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'platform.audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON platform.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION platform.audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON platform.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION platform.audit_log_is_append_only();

-- Re-identification: the only place a personnummer is kept, encrypted (AES-GCM, key held
-- outside the database: FLK_IDENTITY_VAULT_KEY). Written at the edge where person ids enter
-- (population register adapter, listing import); read only server-side to show a listing
-- unit's own staff who their patients are.
CREATE TABLE platform.person_identity (
    patient_key          text PRIMARY KEY,
    person_id_ciphertext bytea       NOT NULL,
    id_kind              text        NOT NULL CHECK (id_kind IN ('personnummer', 'samordningsnummer', 'reservnummer')),
    protected_identity   boolean     NOT NULL DEFAULT false,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
