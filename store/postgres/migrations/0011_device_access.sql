-- Device access (iomt.Device.Disabled, iomt.Device.Gateway): a disabled device cannot
-- authenticate; gateway is the id of the edge gateway the device sits behind, the only one
-- that may publish for it (NULL when none). Existing devices stay enabled, behind no gateway.
ALTER TABLE devices
    ADD COLUMN disabled boolean NOT NULL DEFAULT false,
    ADD COLUMN gateway text COLLATE "C";
