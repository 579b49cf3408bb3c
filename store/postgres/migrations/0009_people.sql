-- The people of a deployment (iomt.IdentityStore): users, care teams, sessions, API tokens
-- and emergency accesses. Secrets are kept as the identity code derives them (password and
-- TOTP as given, session and token secrets as SHA-256 hashes); never log these tables.
-- No foreign keys: the store does not promise that the users and patients a row names exist,
-- on either backend.

-- A login is unique per tenant in lower case (login_key, computed by iomt.LoginKey so that
-- both stores agree on what lower case is); an OpenID Connect identity (issuer, subject) is
-- unique per tenant when set.
CREATE TABLE users (
    id              text COLLATE "C" PRIMARY KEY,
    tenant          text COLLATE "C" NOT NULL,
    login           text NOT NULL CONSTRAINT users_login_check CHECK (login <> '' AND login !~ '[\x01-\x1f\x7f]'),
    login_key       text COLLATE "C" NOT NULL,
    name            text NOT NULL DEFAULT '' CONSTRAINT users_name_check CHECK (name !~ '[\x01-\x1f\x7f]'),
    roles           text[] NOT NULL CONSTRAINT users_roles_check CHECK (
        cardinality(roles) >= 1 AND roles <@ ARRAY['admin', 'auditor', 'carer', 'clinician', 'service']),
    disabled        boolean NOT NULL DEFAULT false,
    password_hash   text NOT NULL DEFAULT '',
    totp_secret     text NOT NULL DEFAULT '',
    issuer          text COLLATE "C",       -- NULL when not an OpenID Connect user
    subject         text COLLATE "C",
    failed_sign_ins integer NOT NULL DEFAULT 0 CONSTRAINT users_failed_sign_ins_check CHECK (failed_sign_ins >= 0),
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz,
    CONSTRAINT users_tenant_login_key UNIQUE (tenant, login_key),
    CONSTRAINT users_tenant_oidc_key UNIQUE (tenant, issuer, subject),
    CONSTRAINT users_oidc_check CHECK ((issuer IS NULL) = (subject IS NULL))
);
CREATE INDEX users_tenant_idx ON users (tenant, id);

-- Members, patients and locations are ordered arrays, read with the team; members is
-- searched (teams of a user) through a GIN index.
CREATE TABLE care_teams (
    id         text COLLATE "C" PRIMARY KEY,
    tenant     text COLLATE "C" NOT NULL,
    name       text NOT NULL DEFAULT '',
    members    text[] COLLATE "C" NOT NULL DEFAULT '{}',
    patients   text[] COLLATE "C" NOT NULL DEFAULT '{}',
    locations  text[] COLLATE "C" NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL,
    CONSTRAINT care_teams_lists_check CHECK (array_position(members, NULL) IS NULL
        AND array_position(patients, NULL) IS NULL AND array_position(locations, NULL) IS NULL)
);
CREATE INDEX care_teams_tenant_idx ON care_teams (tenant, id);
CREATE INDEX care_teams_members_idx ON care_teams USING gin (members);

-- id is the SHA-256 of the session token (hex), never the token.
CREATE TABLE sessions (
    id         text COLLATE "C" PRIMARY KEY,
    tenant     text COLLATE "C" NOT NULL,
    user_id    text COLLATE "C" NOT NULL,
    csrf       text NOT NULL DEFAULT '',
    source     text NOT NULL DEFAULT '',
    method     text NOT NULL,
    created_at timestamptz NOT NULL,
    last_seen  timestamptz,
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

CREATE TABLE api_tokens (
    id         text COLLATE "C" PRIMARY KEY,
    tenant     text COLLATE "C" NOT NULL,
    user_id    text COLLATE "C" NOT NULL,
    name       text NOT NULL DEFAULT '',
    hash       bytea NOT NULL CONSTRAINT api_tokens_hash_check CHECK (length(hash) = 32), -- SHA-256 of the secret
    scopes     text[] NOT NULL DEFAULT '{}' CONSTRAINT api_tokens_scopes_check CHECK (array_position(scopes, NULL) IS NULL),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

-- Emergency accesses (break-the-glass): kept for auditors, never deleted by iomt.
CREATE TABLE break_glass (
    id       text COLLATE "C" PRIMARY KEY,
    tenant   text COLLATE "C" NOT NULL,
    user_id  text COLLATE "C" NOT NULL,
    patient  text COLLATE "C" NOT NULL,
    reason   text NOT NULL CONSTRAINT break_glass_reason_check CHECK (btrim(reason) <> ''),
    start_at timestamptz NOT NULL,
    until_at timestamptz NOT NULL,
    CONSTRAINT break_glass_period_check CHECK (until_at > start_at)
);
CREATE INDEX break_glass_user_idx ON break_glass (user_id, start_at);
CREATE INDEX break_glass_patient_idx ON break_glass (patient, start_at);
CREATE INDEX break_glass_tenant_idx ON break_glass (tenant, start_at);
