-- P3: guardians from the population register, and a minor's listing request that waits for the
-- other guardian's consent.
--
-- listing.person.guardian_keys: the person's vårdnadshavare as the population register states them
-- (person.registered/updated.v1 `guardian_keys`), pseudonymous patient keys like every patient key.
-- NULL: the register has said nothing about guardianship (the command's guardian_count is used, v1);
-- an empty array: the register states no guardian. The person history trigger keeps earlier values.
ALTER TABLE listing.person
    ADD COLUMN guardian_keys text[]
        CHECK (guardian_keys IS NULL OR (cardinality(guardian_keys) <= 2
               AND NOT (patient_key = ANY (guardian_keys))));

-- A guardian's request to list a minor, pending until every guardian has consented (or refused, or
-- it expired, was superseded by a newer request, or the child left the population). One open
-- request per child. Closing is the record (closed_on + outcome set once); nothing is deleted.
CREATE TABLE listing.pending_listing (
    pending_id              uuid        PRIMARY KEY,
    patient_key             text        NOT NULL REFERENCES listing.person (patient_key),
    care_unit_id            text        NOT NULL REFERENCES listing.care_unit (hsa_id),
    requested_on            date        NOT NULL,
    expires_on              date        NOT NULL CHECK (expires_on > requested_on),
    consented_guardian_keys text[]      NOT NULL,
    awaiting_guardian_keys  text[]      NOT NULL,
    origin                  text        NOT NULL,
    channel                 text        NOT NULL,
    initiated_by            text        NOT NULL,
    exemption_reason        text,
    residency_exception     text,
    closed_on               date        CHECK (closed_on IS NULL OR closed_on >= requested_on),
    outcome                 text        CHECK (outcome IN ('consented', 'rejected', 'refused', 'expired', 'superseded',
                                                           'cancelled')),
    command_id              text        NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    CHECK ((closed_on IS NULL) = (outcome IS NULL))
);
CREATE UNIQUE INDEX pending_listing_one_open ON listing.pending_listing (patient_key) WHERE closed_on IS NULL;
-- the expiry sweep
CREATE INDEX pending_listing_expiry ON listing.pending_listing (expires_on) WHERE closed_on IS NULL;
-- the 1177 view of a guardian: requests awaiting them
CREATE INDEX pending_listing_awaiting ON listing.pending_listing USING gin (awaiting_guardian_keys)
    WHERE closed_on IS NULL;

CREATE FUNCTION listing.pending_only_close() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.closed_on IS NOT NULL THEN
        RAISE EXCEPTION 'listing.pending_listing: a closed request is not changed';
    END IF;
    IF (NEW.patient_key, NEW.care_unit_id, NEW.requested_on, NEW.expires_on)
       IS DISTINCT FROM (OLD.patient_key, OLD.care_unit_id, OLD.requested_on, OLD.expires_on) THEN
        RAISE EXCEPTION 'listing.pending_listing: a request''s unit and dates do not change';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER pending_listing_only_close BEFORE UPDATE ON listing.pending_listing
    FOR EACH ROW EXECUTE FUNCTION listing.pending_only_close();
CREATE TRIGGER pending_listing_history BEFORE UPDATE ON listing.pending_listing
    FOR EACH ROW EXECUTE FUNCTION listing.keep_history();
CREATE TRIGGER pending_listing_no_delete BEFORE DELETE ON listing.pending_listing
    FOR EACH ROW EXECUTE FUNCTION listing.refuse_delete();
CREATE TRIGGER pending_listing_no_truncate BEFORE TRUNCATE ON listing.pending_listing
    FOR EACH STATEMENT EXECUTE FUNCTION listing.refuse_delete();
