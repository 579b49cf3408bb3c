-- Members a care team got from the identity provider's groups, so single sign-on can take
-- them out again when the groups no longer name the team (members added by hand stay).
ALTER TABLE care_teams ADD COLUMN sso_members text[] COLLATE "C" NOT NULL DEFAULT '{}'
    CONSTRAINT care_teams_sso_members_check CHECK (array_position(sso_members, NULL) IS NULL);
