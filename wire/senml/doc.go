// Package senml reads and writes SenML packs (RFC 8428) in their JSON and CBOR representations
// and resolves them into absolute, self-contained records (RFC 8428 §4.6).
//
// Decoding is strict because packs come from devices: the top level must be an array of
// records, every known field must have the type RFC 8428 gives it, fields whose label ends in
// '_' are refused (must-understand), a pack of a newer SenML version is refused, and duplicate
// known fields are refused rather than silently letting one win. Unknown fields are ignored.
// Every refusal is an *Error naming the record (0-based) and field, so ingest can report it.
//
// Both decoders first let a library check the syntax (encoding/json's Valid, fxamacker/cbor's
// Wellformed with nesting and size limits) and then walk the already validated bytes once.
// That keeps the ingest path free of per-record reflection and maps, and it is what lets an
// error name the record index and the exact label, which reflection-based decoding loses.
//
// Resolve applies the base fields, relative times and the naming rules; the choices made where
// RFC 8428 leaves room are documented on Pack.Resolve.
package senml
