-- Silences of a patient's alarms (iomt.AlarmSilence): a patient, or one rule or device of a
-- patient ('' when not narrowed), quiet until until_at, covering alarms raised meanwhile. Kept so
-- that a restart or a partition handover does not end them early; a save drops the ones that
-- ended before it, so the table holds a ward's few current silences.
CREATE TABLE alarm_silences (
    tenant     text COLLATE "C" NOT NULL,
    patient    text COLLATE "C" NOT NULL,
    rule       text COLLATE "C" NOT NULL DEFAULT '',
    device     text COLLATE "C" NOT NULL DEFAULT '',
    until_at   timestamptz NOT NULL,
    who        text NOT NULL,
    why        text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, patient, rule, device, until_at)
);
CREATE INDEX alarm_silences_until ON alarm_silences (until_at);
