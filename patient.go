package iomt

import (
	"fmt"
	"time"
)

// Patient is a person whose vital signs are monitored.
type Patient struct {
	ID        string `json:"id"`
	Tenant    string `json:"tenant"`
	Name      string `json:"name"`
	BirthDate string `json:"birthDate,omitempty"` // YYYY-MM-DD
	MRN       string `json:"mrn,omitempty"`       // medical record number, unique per tenant
	// SpO2Scale is the NEWS2 SpO2 scale the pipeline scores this patient on: 0 (not set) and
	// 1 mean scale 1; 2 is scale 2, which a clinician prescribes for hypercapnic respiratory
	// failure with a target saturation of 88–92 %. See CheckSpO2Scale.
	SpO2Scale int       `json:"spo2Scale,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// CheckSpO2Scale refuses a NEWS2 SpO2 scale other than 0 (not set: scale 1), 1 or 2, with an
// error wrapping ErrInvalid. Stores call it too, so that no path writes a scale the scorer
// would have to guess about.
func CheckSpO2Scale(scale int) error {
	if scale < 0 || scale > 2 {
		return fmt.Errorf("%w: NEWS2 SpO2 scale must be 1 or 2 (0: not set, scale 1), got %d", ErrInvalid, scale)
	}
	return nil
}

// PatientFilter selects patients; zero fields match everything.
type PatientFilter struct {
	Tenant string
	MRN    string
	Limit  int
}
