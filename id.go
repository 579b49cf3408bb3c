package iomt

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
)

// IDEncoding is the alphabet of the ids iomt generates for patients and devices: lower-case
// base32 without padding, safe in URLs and MQTT topics. FHIR packs such ids back to their
// bytes to keep its Observation ids short.
var IDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a random 80-bit id in IDEncoding.
func NewID() (string, error) {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	return IDEncoding.EncodeToString(b), nil
}
