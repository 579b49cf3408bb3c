-- NEWS2 SpO2 scale per patient (iomt.Patient.SpO2Scale): 0 not set (scale 1), 1 or 2. The
-- pipeline scores the patient's saturation on it, so the database refuses anything else even
-- if a writer forgot to check. Existing patients get 0: scale 1, as before this column.
ALTER TABLE patients
    ADD COLUMN spo2_scale smallint NOT NULL DEFAULT 0
    CONSTRAINT patients_spo2_scale_check CHECK (spo2_scale IN (0, 1, 2));
