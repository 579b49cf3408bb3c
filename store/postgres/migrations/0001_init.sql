-- iomt schema, version 1. See store/postgres/README.md for what each table holds.
-- Identifiers (ids, codes, units) use the "C" collation: byte order, the same order the
-- embedded store uses, and cheaper to compare in the indexes written for every reading.

CREATE TABLE patients (
    id         text COLLATE "C" PRIMARY KEY,
    tenant     text COLLATE "C" NOT NULL,
    name       text NOT NULL,
    birth_date text NOT NULL DEFAULT '',   -- YYYY-MM-DD as given, '' when unknown
    mrn        text COLLATE "C",           -- medical record number, NULL when none
    created_at timestamptz NOT NULL,
    CONSTRAINT patients_tenant_mrn_key UNIQUE (tenant, mrn)
);
CREATE INDEX patients_tenant_idx ON patients (tenant, id);

CREATE TABLE devices (
    id                 text COLLATE "C" PRIMARY KEY,
    tenant             text COLLATE "C" NOT NULL,
    kind               text NOT NULL,
    patient            text COLLATE "C",   -- bound patient, NULL when unbound
    mqtt_password_hash bytea,              -- SHA-256 of the MQTT password, never the password
    token_hash         bytea,              -- SHA-256 of the API token
    created_at         timestamptz NOT NULL,
    last_seen          timestamptz,
    battery            double precision    -- percent
);
CREATE INDEX devices_tenant_idx ON devices (tenant, id);
CREATE INDEX devices_patient_idx ON devices (patient, id);

-- One row per numeric reading, partitioned by day on time (partitions are created by the
-- store as data arrives; see partitions.go).
CREATE TABLE observations (
    tenant  text COLLATE "C" NOT NULL,
    patient text COLLATE "C" NOT NULL,
    device  text COLLATE "C" NOT NULL,
    code    text COLLATE "C" NOT NULL,     -- LOINC
    time    timestamptz NOT NULL,          -- millisecond precision
    value   double precision NOT NULL,
    unit    text COLLATE "C" NOT NULL      -- UCUM
) PARTITION BY RANGE (time);
-- A reading is identified by (device, code, time): retries and replays are skipped.
CREATE UNIQUE INDEX observations_identity ON observations (device, code, time);
-- Serves a patient's series over a time range (API, Grafana).
CREATE INDEX observations_series ON observations (patient, code, time);

-- The most recent reading of each (patient, code), maintained by every Append.
CREATE TABLE latest (
    patient text COLLATE "C" NOT NULL,
    code    text COLLATE "C" NOT NULL,
    tenant  text COLLATE "C" NOT NULL,
    device  text COLLATE "C" NOT NULL,
    time    timestamptz NOT NULL,
    value   double precision NOT NULL,
    unit    text COLLATE "C" NOT NULL,
    PRIMARY KEY (patient, code)
) WITH (fillfactor = 50); -- room on each page for HOT updates: rows change every second

-- Waveform segments: sample i was taken at start + i * period_ns nanoseconds and its value
-- is samples[i+1] * scale in unit. stop is the time just after the last sample (ms, rounded up).
CREATE TABLE waveforms (
    tenant    text COLLATE "C" NOT NULL,
    patient   text COLLATE "C" NOT NULL,
    device    text COLLATE "C" NOT NULL,
    code      text COLLATE "C" NOT NULL,
    start     timestamptz NOT NULL,
    stop      timestamptz NOT NULL,
    period_ns bigint NOT NULL CHECK (period_ns > 0),
    scale     double precision NOT NULL,
    unit      text COLLATE "C" NOT NULL,
    samples   integer[] NOT NULL
) PARTITION BY RANGE (start);
CREATE UNIQUE INDEX waveforms_identity ON waveforms (device, code, start);
CREATE INDEX waveforms_series ON waveforms (patient, code, start);

-- The longest segment stored, in milliseconds: a window query only looks at segments that
-- start at most this long before the window.
CREATE TABLE waveform_span (
    one    boolean PRIMARY KEY DEFAULT true CHECK (one),
    max_ms bigint NOT NULL
);
INSERT INTO waveform_span (max_ms) VALUES (0);
