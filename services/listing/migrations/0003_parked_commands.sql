-- Commands from Kafka that wait for their person (L4).
--
-- Commands and population facts are separate topics read by separate consumers, so nothing orders
-- a command after the registration of its person. A command about a person the register has not
-- read yet waits here instead of being rejected `person_unknown` at once; so do the person's later
-- commands (their order is kept). The service hands them to the ordinary handlers once the person
-- is known, or, after the grace period (`FLK_LISTING_PERSON_WAIT_S`), lets the handler reject them.
-- Not a register table: a row is deleted once its command is handled (the inbox remembers it).
CREATE TABLE listing.parked_command (
    command_id   text        PRIMARY KEY,
    seq          bigint      GENERATED ALWAYS AS IDENTITY,  -- arrival order
    patient_key  text        NOT NULL,
    message_type text        NOT NULL,
    data         jsonb       NOT NULL,
    event_id     text        NOT NULL,  -- the CloudEvent it came in (for a dead letter on release)
    event_source text        NOT NULL,
    event_time   timestamptz,
    parked_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_command_by_person ON listing.parked_command (patient_key, seq);
