-- Alarms: one row per alarm, replaced as it changes; the whole alarm (with its transitions)
-- is kept as JSON, the columns lists filter on beside it.
CREATE TABLE alarms (
    id          text COLLATE "C" PRIMARY KEY,
    tenant      text COLLATE "C" NOT NULL,
    patient     text COLLATE "C" NOT NULL,
    state       text COLLATE "C" NOT NULL CHECK (state IN ('active', 'acknowledged', 'resolved')),
    priority    text COLLATE "C" NOT NULL,
    rule        text COLLATE "C" NOT NULL,
    raised_at   timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    doc         jsonb NOT NULL
);
CREATE INDEX alarms_patient_raised ON alarms (patient, raised_at DESC);
CREATE INDEX alarms_tenant_raised ON alarms (tenant, raised_at DESC);
CREATE INDEX alarms_unresolved ON alarms (patient) WHERE state <> 'resolved';

-- Versions of each tenant's alarm rules and routing, never overwritten.
CREATE TABLE alarm_configs (
    tenant   text COLLATE "C" NOT NULL,
    kind     text COLLATE "C" NOT NULL CHECK (kind IN ('rules', 'routing')),
    version  int NOT NULL CHECK (version >= 1),
    doc      bytea NOT NULL,
    who      text NOT NULL,
    saved_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, kind, version)
);
