package api

import (
	"encoding/json"
	"net/http"
)

// Problem is an RFC 9457 problem detail.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Code is a machine-readable kind of problem: "access-denied" when the policy refused
	// the request (so a client can tell a refusal from a resource that does not exist).
	Code string `json:"code,omitempty"`
	// Refused lists refused records of an ingest request (an extension member).
	Refused any `json:"refused,omitempty"`
	// Errors lists every problem found in a document (alarm rules), one per entry.
	Errors []ProblemError `json:"errors,omitempty"`
}

// ProblemError is one problem of a document: where (rule, field) and what.
type ProblemError struct {
	Rule   string `json:"rule,omitempty"`
	Field  string `json:"field,omitempty"`
	Detail string `json:"detail"`
}

func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	writeProblemExt(w, r, Problem{Status: status, Detail: detail})
}

func writeProblemExt(w http.ResponseWriter, r *http.Request, p Problem) {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	p.Instance = r.URL.Path
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}
