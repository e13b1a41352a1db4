-- FHIR ingest: what each sender's Encounters were (for idempotency on id and version) and the outbox of
-- the visit events they mean, written in one transaction (publish-once: the relay publishes committed
-- rows; an event id is unique, so the same fact is never queued twice).
--
-- No person id is stored: an Encounter is remembered by the sender's id for it, its version, a keyed
-- digest of its content and the live visit's facts with the pseudonymous patient key.
CREATE SCHEMA IF NOT EXISTS ingest;
GRANT USAGE ON SCHEMA ingest TO flk_reader;

CREATE TABLE ingest.encounter (
    sender        text        NOT NULL,  -- the token's subject: each EHR integration's ids are its own
    encounter_id  text        NOT NULL CHECK (encounter_id ~ '^[A-Za-z0-9.-]{1,64}$'),
    version_id    text,                  -- meta.versionId (NULL: versioned by content_hash)
    last_updated  timestamptz,           -- meta.lastUpdated
    content_hash  text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('contact', 'cancelled', 'entered_in_error', 'not_a_contact')),
    visit_id      text,                  -- the live visit published for it (NULL: none)
    visit         jsonb,                 -- that visit's facts (patient_key, practitioner_id, ...)
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sender, encounter_id),
    CHECK ((visit_id IS NULL) = (visit IS NULL))
);

CREATE TABLE ingest.outbox (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     text        NOT NULL UNIQUE,
    event_type   text        NOT NULL,
    data         jsonb       NOT NULL,
    event_time   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished_idx ON ingest.outbox (id) WHERE published_at IS NULL;

-- how much was ingested, for the dashboards (no identifiers)
CREATE VIEW ingest.encounter_counts AS
    SELECT sender, kind, count(*) AS encounters, count(visit_id) AS live_visits FROM ingest.encounter GROUP BY 1, 2;
GRANT SELECT ON ingest.encounter_counts TO flk_reader;
