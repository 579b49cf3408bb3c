-- The time step of the last second-factor code a user signed in with: a code works once on
-- every node and across restarts.
ALTER TABLE users ADD COLUMN totp_step bigint NOT NULL DEFAULT 0;
