-- CGM alert thresholds per patient (iomt.Patient.CGMLimits), mg/dL: all four 0 (not set:
-- the pipeline's defaults) or 40 <= urgent low < low < high < urgent high <= 400. The alert
-- monitor reads them, so the database refuses anything else even if a writer forgot to check.
ALTER TABLE patients
    ADD COLUMN cgm_urgent_low double precision NOT NULL DEFAULT 0,
    ADD COLUMN cgm_low double precision NOT NULL DEFAULT 0,
    ADD COLUMN cgm_high double precision NOT NULL DEFAULT 0,
    ADD COLUMN cgm_urgent_high double precision NOT NULL DEFAULT 0,
    ADD CONSTRAINT patients_cgm_limits_check CHECK (
        (cgm_urgent_low = 0 AND cgm_low = 0 AND cgm_high = 0 AND cgm_urgent_high = 0)
        OR (40 <= cgm_urgent_low AND cgm_urgent_low < cgm_low AND cgm_low < cgm_high
            AND cgm_high < cgm_urgent_high AND cgm_urgent_high <= 400));
