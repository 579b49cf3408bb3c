-- Business identifiers of a device (iomt.Device.Identifiers: serial number, UDI, asset tag),
-- a JSON array of {"system", "value"} objects, kept whole: they are read with the device and
-- never queried on their own. Existing devices get none.
ALTER TABLE devices
    ADD COLUMN identifiers jsonb NOT NULL DEFAULT '[]'
    CONSTRAINT devices_identifiers_check CHECK (jsonb_typeof(identifiers) = 'array');
