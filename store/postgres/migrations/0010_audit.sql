-- The audit trail (iomt.AuditEvent): one chain for the whole cluster. seq is assigned under the
-- lock of audit_head's single row, so appends from every node form one line: 1, 2, 3, ...
-- Each row's hash covers its content and prev (the hash of row seq-1); see iomt.AuditEvent.
-- Times are kept at millisecond precision, which the hash covers.
CREATE TABLE audit_events (
    seq        bigint PRIMARY KEY,
    at         timestamptz NOT NULL,
    tenant     text COLLATE "C" NOT NULL,
    actor      text COLLATE "C" NOT NULL,
    actor_name text NOT NULL DEFAULT '',
    action     text COLLATE "C" NOT NULL,
    outcome    text NOT NULL,
    status     integer NOT NULL DEFAULT 0,
    patients   text[],              -- NULL when the record names none
    resource   text NOT NULL DEFAULT '',
    source     text NOT NULL DEFAULT '',
    reason     text NOT NULL DEFAULT '',
    purpose    text NOT NULL DEFAULT '',
    detail     jsonb,               -- NULL when none; an object of strings
    prev       bytea NOT NULL,
    hash       bytea NOT NULL
);
-- "Who has seen this patient's data" and "what did this user do" are one index scan each.
CREATE INDEX audit_events_patients ON audit_events USING gin (patients);
CREATE INDEX audit_events_actor ON audit_events (actor, seq);
CREATE INDEX audit_events_at ON audit_events (at);

-- The head of the chain: the last seq and its hash. Appends lock this row (SELECT ... FOR
-- UPDATE) for the length of their transaction.
CREATE TABLE audit_head (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq  bigint NOT NULL,
    hash bytea NOT NULL
);
INSERT INTO audit_head (one, seq, hash) VALUES (true, 0, decode(repeat('00', 32), 'hex'));

-- Signed checkpoints (iomt.AuditCheckpoint): a node's Ed25519 signature over (seq, hash, at).
CREATE TABLE audit_checkpoints (
    seq       bigint NOT NULL,
    key_id    text COLLATE "C" NOT NULL,
    hash      bytea NOT NULL,
    at        timestamptz NOT NULL,
    signature bytea NOT NULL,
    PRIMARY KEY (seq, key_id)
);
