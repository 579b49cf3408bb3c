package iomt

import "time"

// Patient is a person whose vital signs are monitored.
type Patient struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	Name      string    `json:"name"`
	BirthDate string    `json:"birthDate,omitempty"` // YYYY-MM-DD
	MRN       string    `json:"mrn,omitempty"`       // medical record number, unique per tenant
	CreatedAt time.Time `json:"createdAt"`
}

// PatientFilter selects patients; zero fields match everything.
type PatientFilter struct {
	Tenant string
	MRN    string
	Limit  int
}
