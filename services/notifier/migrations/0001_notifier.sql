-- Notifier: care-gap detection state, care gaps, alerts, deliveries, and the transactional
-- inbox/outbox. One consumed message = one transaction over inbox + state + gaps + outbox.
CREATE SCHEMA IF NOT EXISTS notifier;
GRANT USAGE ON SCHEMA notifier TO flk_reader;

-- Consumed event ids (dedupe: the same message twice changes nothing).
CREATE TABLE notifier.inbox (
    event_id    text        PRIMARY KEY,
    event_type  text        NOT NULL,
    received_at timestamptz NOT NULL
);

-- Per-patient care state (services.notifier.domain.care_gaps.PatientCareState as compact JSON).
-- next_wakeup: when a Tick may change something without a new fact (grace period, SÄBO dates);
-- the ticker reads only the due rows through the partial index.
CREATE TABLE notifier.patient_care_state (
    patient_key text        PRIMARY KEY,
    state       jsonb       NOT NULL,
    next_wakeup timestamptz,
    version     bigint      NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX patient_care_state_wakeup_idx ON notifier.patient_care_state (next_wakeup)
    WHERE next_wakeup IS NOT NULL;

-- Care gaps, open and resolved. At most one open gap per patient and unit.
CREATE TABLE notifier.care_gap (
    gap_id       uuid        PRIMARY KEY,
    patient_key  text        NOT NULL,
    care_unit_id text        NOT NULL,
    cause        text        NOT NULL,
    rub          smallint    CHECK (rub BETWEEN 0 AND 5),
    sabo         boolean     NOT NULL,
    opened_at    timestamptz NOT NULL,
    resolved_at  timestamptz,
    resolution   text,
    CHECK ((resolved_at IS NULL) = (resolution IS NULL))
);
CREATE UNIQUE INDEX care_gap_one_open_per_patient_and_unit ON notifier.care_gap (patient_key, care_unit_id)
    WHERE resolved_at IS NULL;
CREATE INDEX care_gap_open_by_unit_idx ON notifier.care_gap (care_unit_id, opened_at)
    WHERE resolved_at IS NULL;

-- The alert path reads open gaps only through this view: it has no patient key.
CREATE VIEW notifier.open_care_gap_for_alerting AS
    SELECT gap_id, care_unit_id, cause, rub, sabo, opened_at
    FROM notifier.care_gap
    WHERE resolved_at IS NULL;

-- Events waiting for the relay (care_gap.* and alert.delivered). Ids are deterministic.
CREATE TABLE notifier.outbox (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     text        NOT NULL UNIQUE,
    event_type   text        NOT NULL,
    data         jsonb       NOT NULL,
    event_time   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished_idx ON notifier.outbox (id) WHERE published_at IS NULL;

-- How each care unit is alerted. The Teams webhook URL is a credential: only the NAME of the
-- secret that holds it is stored here (resolved through the SecretStore at send time).
CREATE TABLE notifier.unit_routing (
    care_unit_id             text        PRIMARY KEY,
    unit_name                text        NOT NULL,
    email_to                 text[]      NOT NULL DEFAULT '{}',
    teams_webhook_secret_ref text        CHECK (teams_webhook_secret_ref IS NULL OR teams_webhook_secret_ref NOT LIKE '%://%'),
    mode                     text        NOT NULL DEFAULT 'daily_digest' CHECK (mode IN ('immediate', 'daily_digest')),
    digest_hour              smallint    NOT NULL DEFAULT 7 CHECK (digest_hour BETWEEN 0 AND 23),
    quiet_start              time,
    quiet_end                time,
    escalation_after_days    integer     CHECK (escalation_after_days IS NULL OR escalation_after_days >= 1),
    escalation_email         text[]      NOT NULL DEFAULT '{}',
    digest_when_empty        boolean     NOT NULL DEFAULT false,
    timezone                 text        NOT NULL DEFAULT 'Europe/Stockholm',
    updated_at               timestamptz NOT NULL DEFAULT now(),
    updated_by               text,
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);

-- One row per planned alert (counts only: the summary has no patient identifiers).
CREATE TABLE notifier.alert (
    alert_id              uuid        PRIMARY KEY,
    care_unit_id          text        NOT NULL,
    kind                  text        NOT NULL CHECK (kind IN ('new_gaps', 'daily_digest', 'escalation')),
    unit_name             text        NOT NULL,
    gap_count             integer     NOT NULL,
    gap_ids               uuid[]      NOT NULL DEFAULT '{}',
    summary               jsonb       NOT NULL,
    digest_date           date,
    escalation_after_days integer,
    planned_at            timestamptz NOT NULL
);
CREATE INDEX alert_unit_idx ON notifier.alert (care_unit_id, planned_at);

-- Every dedup id of a planned alert (the alert id, and one per gap for new-gap and escalation
-- alerts): a gap is announced once whatever batch it falls in.
CREATE TABLE notifier.alert_dedup (
    dedup_id     uuid PRIMARY KEY,
    alert_id     uuid NOT NULL REFERENCES notifier.alert (alert_id),
    care_unit_id text NOT NULL
);

-- One delivery per alert and channel; the delivery worker picks due rows by next_attempt_at.
CREATE TABLE notifier.alert_delivery (
    delivery_id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id        uuid        NOT NULL REFERENCES notifier.alert (alert_id),
    channel         text        NOT NULL CHECK (channel IN ('email', 'teams')),
    recipients      text[]      NOT NULL DEFAULT '{}',   -- email addresses (unit mailboxes)
    secret_ref      text,                                -- Teams: the secret's name, never the URL
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    delivered_at    timestamptz,
    last_error      text,
    UNIQUE (alert_id, channel)
);
CREATE INDEX alert_delivery_due_idx ON notifier.alert_delivery (next_attempt_at) WHERE status = 'pending';

-- The delivery log: every attempt and its outcome (status code / SMTP reply, never a body).
CREATE TABLE notifier.delivery_attempt (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id      bigint      NOT NULL REFERENCES notifier.alert_delivery (delivery_id),
    alert_id         uuid        NOT NULL,
    care_unit_id     text        NOT NULL,
    channel          text        NOT NULL,
    attempt          integer     NOT NULL,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL,
    outcome          text        NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
    http_status      integer,
    smtp_code        integer,
    smtp_reply_class text,
    error_type       text,
    retry_after      text,
    next_attempt_at  timestamptz,
    reason           text,
    UNIQUE (delivery_id, attempt)
);
CREATE INDEX delivery_attempt_alert_idx ON notifier.delivery_attempt (alert_id);

-- Reporting views (no patient key) for Grafana's read-only role.
CREATE VIEW notifier.open_care_gaps_by_unit AS
    SELECT care_unit_id,
           count(*)                              AS open_gaps,
           count(*) FILTER (WHERE sabo)          AS open_gaps_sabo,
           count(*) FILTER (WHERE rub >= 4)      AS open_gaps_rub_4_5,
           min(opened_at)                        AS oldest_opened_at
    FROM notifier.care_gap
    WHERE resolved_at IS NULL
    GROUP BY care_unit_id;

CREATE VIEW notifier.care_gap_history AS
    SELECT gap_id, care_unit_id, cause, rub, sabo, opened_at, resolved_at, resolution
    FROM notifier.care_gap;

CREATE VIEW notifier.delivery_log AS
    SELECT a.id, a.alert_id, a.care_unit_id, a.channel, al.kind, a.attempt, a.started_at, a.finished_at,
           a.outcome, a.http_status, a.smtp_code, a.smtp_reply_class, a.error_type, a.retry_after, a.reason
    FROM notifier.delivery_attempt a JOIN notifier.alert al USING (alert_id);

GRANT SELECT ON notifier.open_care_gaps_by_unit, notifier.care_gap_history, notifier.delivery_log TO flk_reader;
