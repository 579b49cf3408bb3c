-- Administrative gender and the parts of the name (iomt.Patient.Gender, Family, Given). The
-- name column stays the display text. gender is FHIR's AdministrativeGender or '' (not given),
-- checked by the table as the SpO2 scale is, so that no writer leaves a code FHIR clients
-- cannot read. given is an ordered array of given names, read with the patient, never queried
-- on its own. Existing patients get none of them: their name was kept as text only.
ALTER TABLE patients
    ADD COLUMN gender text NOT NULL DEFAULT ''
    CONSTRAINT patients_gender_check CHECK (gender IN ('', 'male', 'female', 'other', 'unknown')),
    ADD COLUMN family text NOT NULL DEFAULT '',
    ADD COLUMN given text[] NOT NULL DEFAULT '{}'
    CONSTRAINT patients_given_check CHECK (array_position(given, NULL) IS NULL);
