-- Where a patient lies (iomt.Patient.Location): a path from the site down, such as
-- 'north/ward-3/bed-12' or 'home', or '' when not known. Care teams cover the patients of the
-- locations they list and of those below them, so the table refuses what is not such a path.
ALTER TABLE patients
    ADD COLUMN location text COLLATE "C" NOT NULL DEFAULT ''
    CONSTRAINT patients_location_check CHECK (
        location = '' OR (location ~ '^[^/]+(/[^/]+)*$' AND location !~ '[\x01-\x1f\x7f]'));
