-- Listing register: persons, units (contracts, listing limits), practitioner roles, lists (kept
-- apart from doctors), listings, FLK assignments, declines, fast vårdkontakter, switch history,
-- SÄBO residences, RUB assessments, and the transactional inbox/outbox.
--
-- History: nothing is updated in place without a record of what it was. Periods are closed,
-- never deleted (a trigger refuses DELETE on every register table), and every UPDATE copies
-- the old row into listing.history (table, operation, old row as jsonb, when, transaction).
-- Periods are stored as start_on / end_on (half-open, end_on NULL = open) so a period closed on
-- its first day keeps its start; `period` is a generated daterange for constraints and queries.
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE SCHEMA IF NOT EXISTS listing;
GRANT USAGE ON SCHEMA listing TO flk_reader;

-- ------------------------------------------------------------------ history and guards
CREATE TABLE listing.history (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name text        NOT NULL,
    operation  text        NOT NULL,
    old_row    jsonb       NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    txid       bigint      NOT NULL DEFAULT txid_current()
);
CREATE INDEX history_table_idx ON listing.history (table_name, changed_at);

CREATE FUNCTION listing.keep_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO listing.history (table_name, operation, old_row) VALUES (TG_TABLE_NAME, TG_OP, to_jsonb(OLD));
    RETURN NEW;
END $$;

CREATE FUNCTION listing.refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'listing.%: rows are never deleted (close the period instead; history is kept)', TG_TABLE_NAME;
END $$;

-- A period may be closed once (end_on NULL -> a date); its start never moves.
CREATE FUNCTION listing.only_close_periods() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.start_on <> OLD.start_on
       OR (OLD.end_on IS NOT NULL AND NEW.end_on IS DISTINCT FROM OLD.end_on) THEN
        RAISE EXCEPTION 'listing.%: a period can only be closed, not moved or reopened', TG_TABLE_NAME;
    END IF;
    RETURN NEW;
END $$;

-- ------------------------------------------------------------------ reference data
-- Persons: ids and flags only (P2: no name or address, ever).
CREATE TABLE listing.person (
    patient_key        text        PRIMARY KEY CHECK (patient_key ~ '^pk1_[a-z2-7]{26}$'),
    population_status  text        NOT NULL CHECK (population_status IN
                                       ('folkbokford', 'deceased', 'emigrated', 'moved_out_of_region')),
    status_date        date,
    home_region        text        NOT NULL CHECK (home_region ~ '^[0-9]{2}$'),
    birth_date         date,
    protected_identity boolean     NOT NULL DEFAULT false,
    sabo_resident      boolean     NOT NULL DEFAULT false,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE listing.care_unit (
    hsa_id                 text        PRIMARY KEY,
    name                   text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    region_code            text        NOT NULL CHECK (region_code ~ '^[0-9]{2}$'),
    verksamhetschef_hsa_id text,
    updated_at             timestamptz NOT NULL DEFAULT now()
);

-- L3: the periods a unit is run by, or under contract with, the region.
CREATE TABLE listing.unit_contract (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    care_unit_id text        NOT NULL REFERENCES listing.care_unit,
    start_on     date        NOT NULL,
    end_on       date        CHECK (end_on IS NULL OR end_on >= start_on),
    period       daterange   GENERATED ALWAYS AS (daterange(start_on, end_on)) STORED,
    created_at   timestamptz NOT NULL DEFAULT now(),
    EXCLUDE USING gist (care_unit_id WITH =, period WITH &&)
);

-- L7: decided listing limits with validity and exempt groups (newborn, sabo).
CREATE TABLE listing.listing_limit (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    care_unit_id  text        NOT NULL REFERENCES listing.care_unit,
    max_listed    integer     NOT NULL CHECK (max_listed >= 0),
    start_on      date        NOT NULL,
    end_on        date        CHECK (end_on IS NULL OR end_on >= start_on),
    period        daterange   GENERATED ALWAYS AS (daterange(start_on, end_on)) STORED,
    exempt_groups text[]      NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    EXCLUDE USING gist (care_unit_id WITH =, period WITH &&)
);

-- Practitioner roles (from the roster). Not bound to a unit row: the roster may come first.
CREATE TABLE listing.practitioner_role (
    role_id             text         PRIMARY KEY,
    practitioner_id     text         NOT NULL,
    care_unit_id        text         NOT NULL,
    profession          text         NOT NULL,
    legitimerad         boolean      NOT NULL,
    employment_type     text         NOT NULL CHECK (employment_type IN ('tillsvidare', 'st_allmanmedicin', 'hyr', 'konsult')),
    specialty           text,
    fte                 numeric(4,2) NOT NULL CHECK (fte > 0),
    individual_capacity integer      CHECK (individual_capacity >= 0),
    start_on            date         NOT NULL,
    end_on              date         CHECK (end_on IS NULL OR end_on >= start_on),
    updated_at          timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX practitioner_role_practitioner_idx ON listing.practitioner_role (practitioner_id, care_unit_id);

-- Lists, kept apart from doctors: a doctor list is bound to a role (vacant when the role ended,
-- until a successor's role is bound); a fictive list "<unit name> Dr X" holds locums' patients (F3).
CREATE TABLE listing.doctor_list (
    list_id      text        PRIMARY KEY CHECK (length(list_id) BETWEEN 1 AND 64),
    care_unit_id text        NOT NULL,
    display_name text        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('doctor', 'fictive')),
    role_id      text        REFERENCES listing.practitioner_role,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'fictive' OR role_id IS NOT NULL)
);
CREATE INDEX doctor_list_unit_idx ON listing.doctor_list (care_unit_id);
CREATE INDEX doctor_list_role_idx ON listing.doctor_list (role_id);

-- ------------------------------------------------------------------ a person's records
-- L1: at most one listing at a time, by the database: no two periods of one person overlap
-- (exclusion constraint) and at most one is open (partial unique index).
CREATE TABLE listing.listing (
    listing_id       uuid        PRIMARY KEY,
    patient_key      text        NOT NULL REFERENCES listing.person,
    care_unit_id     text        NOT NULL REFERENCES listing.care_unit,
    registered_on    date        NOT NULL,
    start_on         date        NOT NULL,  -- responsibility_from (L6)
    end_on           date        CHECK (end_on IS NULL OR end_on >= start_on),
    period           daterange   GENERATED ALWAYS AS (daterange(start_on, end_on)) STORED,
    origin           text        NOT NULL CHECK (origin IN ('active_choice', 'no_choice_placement', 'assigned', 'import')),
    channel          text        NOT NULL CHECK (channel IN ('1177', 'ehr', 'admin', 'import')),
    initiated_by     text        NOT NULL CHECK (initiated_by IN ('person', 'region')),
    exemption_reason text,
    end_reason       text,
    command_id       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT listing_no_overlap EXCLUDE USING gist (patient_key WITH =, period WITH &&)
);
CREATE UNIQUE INDEX listing_one_open_per_person ON listing.listing (patient_key) WHERE end_on IS NULL;
CREATE INDEX listing_open_by_unit_idx ON listing.listing (care_unit_id) WHERE end_on IS NULL;
CREATE INDEX listing_person_idx ON listing.listing (patient_key, registered_on);

-- L5: switch history (append-only).
CREATE TABLE listing.listing_change (
    id                         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_key                text        NOT NULL REFERENCES listing.person,
    changed_on                 date        NOT NULL,
    from_care_unit_id          text        NOT NULL,
    to_care_unit_id            text        NOT NULL,
    initiated_by               text        NOT NULL,
    origin                     text        NOT NULL,
    exemption_reason           text,
    counts_toward_switch_limit boolean     NOT NULL,
    listing_id                 uuid        NOT NULL REFERENCES listing.listing,
    created_at                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX listing_change_person_idx ON listing.listing_change (patient_key, changed_on);

-- FLK assignments: a person on a list (doctor = a named FLK, fictive = not an FLK, F3).
CREATE TABLE listing.flk_assignment (
    assignment_id   uuid        PRIMARY KEY,
    patient_key     text        NOT NULL REFERENCES listing.person,
    list_id         text        NOT NULL REFERENCES listing.doctor_list,
    care_unit_id    text        NOT NULL,
    list_kind       text        NOT NULL CHECK (list_kind IN ('doctor', 'fictive')),
    practitioner_id text,
    coordinating    boolean     NOT NULL,
    start_on        date        NOT NULL,
    end_on          date        CHECK (end_on IS NULL OR end_on >= start_on),
    period          daterange   GENERATED ALWAYS AS (daterange(start_on, end_on)) STORED,
    end_reason      text,
    command_id      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    EXCLUDE USING gist (patient_key WITH =, list_id WITH =, period WITH &&)
);
CREATE INDEX flk_assignment_open_person_idx ON listing.flk_assignment (patient_key) WHERE end_on IS NULL;
CREATE INDEX flk_assignment_open_list_idx ON listing.flk_assignment (list_id) WHERE end_on IS NULL;
CREATE INDEX flk_assignment_person_idx ON listing.flk_assignment (patient_key, start_on);

-- F7: declined FLK at a unit (open until an FLK is assigned or the listing ends).
CREATE TABLE listing.flk_decline (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_key  text        NOT NULL REFERENCES listing.person,
    care_unit_id text        NOT NULL,
    start_on     date        NOT NULL,
    end_on       date        CHECK (end_on IS NULL OR end_on >= start_on),
    command_id   text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX flk_decline_open_idx ON listing.flk_decline (patient_key) WHERE end_on IS NULL;

-- V1: fast vårdkontakter (any profession) and patients' requests for one.
CREATE TABLE listing.fast_vardkontakt (
    appointment_id      uuid        PRIMARY KEY,
    patient_key         text        NOT NULL REFERENCES listing.person,
    care_unit_id        text        NOT NULL,
    practitioner_id     text        NOT NULL,
    profession          text        NOT NULL,
    appointed_by_hsa_id text        NOT NULL,
    start_on            date        NOT NULL,
    end_on              date        CHECK (end_on IS NULL OR end_on >= start_on),
    end_reason          text,
    command_id          text,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fast_vardkontakt_open_idx ON listing.fast_vardkontakt (patient_key) WHERE end_on IS NULL;

CREATE TABLE listing.fast_vardkontakt_request (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_key  text        NOT NULL REFERENCES listing.person,
    care_unit_id text        NOT NULL,
    requested_on date        NOT NULL,
    fulfilled_on date,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fast_vardkontakt_request_open_idx ON listing.fast_vardkontakt_request (patient_key) WHERE fulfilled_on IS NULL;

-- SÄBO residence records from the municipalities (G3 reads these periods directly).
CREATE TABLE listing.sabo_residence (
    residence_id      text        PRIMARY KEY,
    patient_key       text        NOT NULL,
    start_on          date        NOT NULL,
    end_on            date        CHECK (end_on IS NULL OR end_on >= start_on),
    period            daterange   GENERATED ALWAYS AS (daterange(start_on, end_on)) STORED,
    municipality_code text,
    recorded_at       timestamptz NOT NULL
);
CREATE INDEX sabo_residence_person_idx ON listing.sabo_residence (patient_key);

-- RUB from the periodic ACG run: a versioned attribute (every assessment kept, latest wins).
CREATE TABLE listing.risk_assessment (
    assessment_id   text        PRIMARY KEY,
    patient_key     text        NOT NULL,
    rub             smallint    NOT NULL CHECK (rub BETWEEN 0 AND 5),
    acg_version     text        NOT NULL,
    lookback_months integer     NOT NULL,
    computed_at     timestamptz NOT NULL
);
CREATE INDEX risk_assessment_person_idx ON listing.risk_assessment (patient_key, computed_at DESC);

-- ------------------------------------------------------------------ inbox / outbox
-- Consumed message ids (command_id for commands, the CloudEvents id for facts): written in the
-- same transaction as the state change, so the same message twice changes nothing. `outcome`
-- is what the first handling answered (the REST API returns it again for a repeated command).
CREATE TABLE listing.inbox (
    message_id   text        PRIMARY KEY,
    message_type text        NOT NULL,
    outcome      jsonb,
    received_at  timestamptz NOT NULL DEFAULT now()
);

-- Events waiting for the relay; event id = uuid5 of the row id (derived in the relay).
CREATE TABLE listing.outbox (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type   text        NOT NULL,
    data         jsonb       NOT NULL,
    event_time   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished_idx ON listing.outbox (id) WHERE published_at IS NULL;

-- ------------------------------------------------------------------ triggers
CREATE TRIGGER person_history BEFORE UPDATE ON listing.person FOR EACH ROW EXECUTE FUNCTION listing.keep_history();
CREATE TRIGGER care_unit_history BEFORE UPDATE ON listing.care_unit FOR EACH ROW EXECUTE FUNCTION listing.keep_history();
CREATE TRIGGER unit_contract_history BEFORE UPDATE ON listing.unit_contract FOR EACH ROW EXECUTE FUNCTION listing.keep_history();
CREATE TRIGGER listing_limit_history BEFORE UPDATE ON listing.listing_limit FOR EACH ROW EXECUTE FUNCTION listing.keep_history();
CREATE TRIGGER practitioner_role_history BEFORE UPDATE ON listing.practitioner_role FOR EACH ROW EXECUTE FUNCTION listing.keep_history();
CREATE TRIGGER doctor_list_history BEFORE UPDATE ON listing.doctor_list FOR EACH ROW EXECUTE FUNCTION listing.keep_history();
CREATE TRIGGER sabo_residence_history BEFORE UPDATE ON listing.sabo_residence FOR EACH ROW EXECUTE FUNCTION listing.keep_history();
CREATE TRIGGER flk_assignment_history BEFORE UPDATE ON listing.flk_assignment FOR EACH ROW EXECUTE FUNCTION listing.keep_history();
CREATE TRIGGER fast_vardkontakt_history BEFORE UPDATE ON listing.fast_vardkontakt FOR EACH ROW EXECUTE FUNCTION listing.keep_history();
CREATE TRIGGER fast_vardkontakt_request_history BEFORE UPDATE ON listing.fast_vardkontakt_request FOR EACH ROW EXECUTE FUNCTION listing.keep_history();

-- Listings, declines: closing is the record (start kept, end + reason set once).
CREATE TRIGGER listing_only_close BEFORE UPDATE ON listing.listing FOR EACH ROW EXECUTE FUNCTION listing.only_close_periods();
CREATE TRIGGER flk_assignment_only_close BEFORE UPDATE ON listing.flk_assignment FOR EACH ROW EXECUTE FUNCTION listing.only_close_periods();
CREATE TRIGGER flk_decline_only_close BEFORE UPDATE ON listing.flk_decline FOR EACH ROW EXECUTE FUNCTION listing.only_close_periods();
CREATE TRIGGER fast_vardkontakt_only_close BEFORE UPDATE ON listing.fast_vardkontakt FOR EACH ROW EXECUTE FUNCTION listing.only_close_periods();
CREATE TRIGGER unit_contract_only_close BEFORE UPDATE ON listing.unit_contract FOR EACH ROW EXECUTE FUNCTION listing.only_close_periods();
CREATE TRIGGER listing_limit_only_close BEFORE UPDATE ON listing.listing_limit FOR EACH ROW EXECUTE FUNCTION listing.only_close_periods();
CREATE TRIGGER listing_change_append_only BEFORE UPDATE ON listing.listing_change FOR EACH ROW EXECUTE FUNCTION listing.refuse_delete();

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['person', 'care_unit', 'unit_contract', 'listing_limit', 'practitioner_role',
                             'doctor_list', 'listing', 'listing_change', 'flk_assignment', 'flk_decline',
                             'fast_vardkontakt', 'fast_vardkontakt_request', 'sabo_residence',
                             'risk_assessment', 'history', 'inbox'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE DELETE ON listing.%I FOR EACH ROW EXECUTE FUNCTION listing.refuse_delete()',
                       t || '_no_delete', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON listing.%I FOR EACH STATEMENT EXECUTE FUNCTION listing.refuse_delete()',
                       t || '_no_truncate', t);
    END LOOP;
END $$;

-- ------------------------------------------------------------------ read side (KPI views)
-- Each person today: listing unit, named FLK (F3: a fictive list is not one), SÄBO residence,
-- latest RUB. Internal (has patient keys): not granted to flk_reader.
CREATE VIEW listing.person_now AS
SELECT p.patient_key,
       p.home_region,
       p.population_status,
       l.care_unit_id AS listed_unit,
       EXISTS (SELECT 1 FROM listing.flk_assignment a
               WHERE a.patient_key = p.patient_key AND a.end_on IS NULL AND a.list_kind = 'doctor'
                 AND a.start_on <= current_date) AS has_named_flk,
       EXISTS (SELECT 1 FROM listing.sabo_residence r
               WHERE r.patient_key = p.patient_key AND r.period @> current_date) AS sabo_now
FROM listing.person p
LEFT JOIN listing.listing l ON l.patient_key = p.patient_key AND l.period @> current_date;

-- G1 per region: named-FLK share of the population (folkbokförda) and of listed persons (target 55 %).
CREATE VIEW listing.kpi_g1_region AS
SELECT home_region AS region_code,
       count(*)                                                            AS population,
       count(*) FILTER (WHERE listed_unit IS NOT NULL)                     AS listed,
       count(*) FILTER (WHERE has_named_flk)                               AS with_named_flk,
       count(*) FILTER (WHERE has_named_flk AND listed_unit IS NOT NULL)   AS listed_with_named_flk,
       round(count(*) FILTER (WHERE has_named_flk)::numeric / nullif(count(*), 0), 4) AS share_of_population,
       round(count(*) FILTER (WHERE has_named_flk AND listed_unit IS NOT NULL)::numeric
             / nullif(count(*) FILTER (WHERE listed_unit IS NOT NULL), 0), 4)     AS share_of_listed,
       0.55::numeric                                                       AS target
FROM listing.person_now
WHERE population_status = 'folkbokford'
GROUP BY home_region;

-- G1 per unit: of the persons listed at the unit.
CREATE VIEW listing.kpi_g1_unit AS
SELECT n.listed_unit AS care_unit_id,
       u.region_code,
       count(*)                                    AS listed,
       count(*) FILTER (WHERE n.has_named_flk)     AS with_named_flk,
       round(count(*) FILTER (WHERE n.has_named_flk)::numeric / nullif(count(*), 0), 4) AS share_of_listed,
       0.55::numeric                               AS target
FROM listing.person_now n
LEFT JOIN listing.care_unit u ON u.hsa_id = n.listed_unit
WHERE n.population_status = 'folkbokford' AND n.listed_unit IS NOT NULL
GROUP BY n.listed_unit, u.region_code;

-- G1 per doctor (named lists): patients with this doctor as FLK, and their share of the unit's listed.
CREATE VIEW listing.kpi_g1_doctor AS
WITH unit_listed AS (
    SELECT listed_unit, count(*) AS listed FROM listing.person_now
    WHERE population_status = 'folkbokford' AND listed_unit IS NOT NULL GROUP BY listed_unit
)
SELECT d.care_unit_id,
       d.list_id,
       r.practitioner_id,
       count(a.patient_key)              AS named_flk_patients,
       coalesce(ul.listed, 0)            AS unit_listed,
       round(count(a.patient_key)::numeric / nullif(ul.listed, 0), 4) AS share_of_unit_listed
FROM listing.doctor_list d
LEFT JOIN listing.practitioner_role r ON r.role_id = d.role_id
LEFT JOIN listing.flk_assignment a ON a.list_id = d.list_id AND a.end_on IS NULL AND a.start_on <= current_date
     AND EXISTS (SELECT 1 FROM listing.person p WHERE p.patient_key = a.patient_key AND p.population_status = 'folkbokford')
LEFT JOIN unit_listed ul ON ul.listed_unit = d.care_unit_id
WHERE d.kind = 'doctor'
GROUP BY d.care_unit_id, d.list_id, r.practitioner_id, ul.listed;

-- G3: SÄBO residents with a named FLK (target 80 %), per region, listing unit and doctor.
CREATE VIEW listing.kpi_g3_region AS
SELECT home_region AS region_code,
       count(*)                                AS sabo_residents,
       count(*) FILTER (WHERE has_named_flk)   AS with_named_flk,
       round(count(*) FILTER (WHERE has_named_flk)::numeric / nullif(count(*), 0), 4) AS share,
       0.80::numeric                           AS target
FROM listing.person_now
WHERE population_status = 'folkbokford' AND sabo_now
GROUP BY home_region;

CREATE VIEW listing.kpi_g3_unit AS
SELECT n.listed_unit AS care_unit_id,
       u.region_code,
       count(*)                                  AS sabo_residents,
       count(*) FILTER (WHERE n.has_named_flk)   AS with_named_flk,
       round(count(*) FILTER (WHERE n.has_named_flk)::numeric / nullif(count(*), 0), 4) AS share,
       0.80::numeric                             AS target
FROM listing.person_now n
LEFT JOIN listing.care_unit u ON u.hsa_id = n.listed_unit
WHERE n.population_status = 'folkbokford' AND n.sabo_now AND n.listed_unit IS NOT NULL
GROUP BY n.listed_unit, u.region_code;

CREATE VIEW listing.kpi_g3_doctor AS
WITH unit_sabo AS (
    SELECT listed_unit, count(*) AS sabo_residents FROM listing.person_now
    WHERE population_status = 'folkbokford' AND sabo_now AND listed_unit IS NOT NULL GROUP BY listed_unit
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
LEFT JOIN listing.person_now n ON n.patient_key = a.patient_key AND n.sabo_now AND n.population_status = 'folkbokford'
LEFT JOIN unit_sabo us ON us.listed_unit = d.care_unit_id
WHERE d.kind = 'doctor'
GROUP BY d.care_unit_id, d.list_id, r.practitioner_id, us.sabo_residents;

-- List load: size per list with the RUB mix (latest assessment per patient) and the national
-- benchmark capacity (individual number, else 550 × FTE for ST, else 1 100 × FTE; F6). The API
-- recomputes capacity under the region's policy profile and applies the RUB weights.
CREATE VIEW listing.list_load AS
WITH latest_rub AS (
    SELECT DISTINCT ON (patient_key) patient_key, rub
    FROM listing.risk_assessment ORDER BY patient_key, computed_at DESC
)
SELECT d.list_id,
       d.care_unit_id,
       d.kind,
       d.display_name,
       d.role_id,
       r.practitioner_id,
       r.employment_type,
       r.fte,
       r.individual_capacity,
       (r.role_id IS NOT NULL AND r.start_on <= current_date AND (r.end_on IS NULL OR r.end_on > current_date)) AS role_active,
       count(a.patient_key)                          AS list_size,
       count(a.patient_key) FILTER (WHERE lr.rub = 0) AS rub_0,
       count(a.patient_key) FILTER (WHERE lr.rub = 1) AS rub_1,
       count(a.patient_key) FILTER (WHERE lr.rub = 2) AS rub_2,
       count(a.patient_key) FILTER (WHERE lr.rub = 3) AS rub_3,
       count(a.patient_key) FILTER (WHERE lr.rub = 4) AS rub_4,
       count(a.patient_key) FILTER (WHERE lr.rub = 5) AS rub_5,
       count(a.patient_key) FILTER (WHERE a.patient_key IS NOT NULL AND lr.rub IS NULL) AS rub_unknown,
       CASE WHEN d.kind = 'fictive' OR r.role_id IS NULL THEN NULL
            WHEN r.individual_capacity IS NOT NULL THEN r.individual_capacity
            WHEN r.employment_type = 'st_allmanmedicin' THEN round(550 * r.fte)::integer
            ELSE round(1100 * r.fte)::integer END    AS benchmark_capacity
FROM listing.doctor_list d
LEFT JOIN listing.practitioner_role r ON r.role_id = d.role_id
LEFT JOIN listing.flk_assignment a ON a.list_id = d.list_id AND a.end_on IS NULL
LEFT JOIN latest_rub lr ON lr.patient_key = a.patient_key
GROUP BY d.list_id, d.care_unit_id, d.kind, d.display_name, d.role_id, r.role_id, r.practitioner_id,
         r.employment_type, r.fte, r.individual_capacity, r.start_on, r.end_on;

-- Grafana (flk_reader) reads aggregates only: the KPI views and list load, never the tables.
GRANT SELECT ON listing.kpi_g1_region, listing.kpi_g1_unit, listing.kpi_g1_doctor,
                listing.kpi_g3_region, listing.kpi_g3_unit, listing.kpi_g3_doctor,
                listing.list_load TO flk_reader;
