// Package codes is iomt's catalog of observation codes: which LOINC code, which IEEE
// 11073-10101 (MDC) term and which canonical UCUM unit stand for each thing a device measures,
// and how to bring a value in another unit to the canonical one.
//
// Every other package asks this catalog rather than keeping its own table: SenML ingest looks
// up the record name and converts the unit, the HL7 v2 and GATT decoders map MDC terms, and the
// FHIR mapping takes the LOINC code and the vital-signs profile code from here.
//
// # Identifiers
//
// A Code's ID is what iomt stores in Observation.Code: the LOINC code where one exists
// ("8867-4"), otherwise the MDC reference id ("MDC_ECG_ELEC_POTL_II"). Lookup accepts any name
// form: the LOINC code, the MDC reference id, the decimal MDC code (partition<<16 | term, as in
// HL7 v2 OBX-3 and FHIR's urn:iso:std:iso:11073:10101 codings), a further MDC term listed in
// AltMDC (site-specific thermometers, for instance), or a documented alias such as "hr".
// Aliases and MDC reference ids match case-insensitively.
//
// # Units
//
// Values are stored in the code's canonical UCUM unit. Convert accepts the canonical unit, ""
// (meaning canonical), UCUM synonyms, SenML registry units (RFC 8428 §12.1) and the MDC_DIM_*
// reference ids that HL7 v2 carries in OBX-6. Conversions are chosen per code, not per unit:
// mmol/L becomes mg/dL only for glucose, whose molar mass fixes the factor.
//
// A dimensionless ratio given as "/" (SenML's preferred ratio unit), "1" or "/1" is turned into
// a percentage for SpO2 and battery: 0.97 "/" is 97 %. Note that RFC 8428 also registers "%"
// as an absolute ratio (deprecated, note 2 of its table 6); iomt follows UCUM, FHIR and HL7
// instead and reads "%" as percent, which is what devices send in practice.
//
// # Ranges
//
// Min and Max bound what is physically possible in the canonical unit, generously: they catch
// garbage (a value in the wrong unit, a sensor's error sentinel), not abnormality. Ingest
// refuses values outside them. For waveforms they also keep Value/Scale within int32.
//
// The table with every code is in README.md next to this file; a test keeps it in step.
package codes
