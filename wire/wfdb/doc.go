// Package wfdb reads PhysioNet WFDB records: the header (.hea), signal files in formats 212 and
// 16, and MIT-format annotation files (.atr), including the SKIP, NUM, SUB, CHN and AUX
// pseudo-annotations that carry rhythm labels such as "(AFIB".
//
// The package parses bytes handed to it; opening files is left to the caller except for the
// small convenience ReadRecord, so every parser can be fuzzed on its own.
package wfdb
