package iomt

// MgdLPerMmolL converts a glucose concentration from mmol/L to mg/dL: glucose (C6H12O6) has a
// molar mass of 180.16 g/mol, so 1 mmol/L is 180.16 mg/L, i.e. 180.16 / 10 = 18.016 mg/dL.
// This is the one statement of the factor; the codes catalog, the GATT glucose decoder and the
// CGM CSV importer all use it, so they cannot drift apart.
const MgdLPerMmolL = 18.016
