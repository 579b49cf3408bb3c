package fhir_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/fhir"
	"github.com/iomt/iomt/policy"
)

// benchCodes are the six vital signs of a ward monitor.
var benchCodes = []struct {
	code, unit string
	base       float64
}{{"8867-4", "/min", 70}, {"9279-1", "/min", 15}, {"59408-5", "%", 96}, {"8310-5", "Cel", 36.8}, {"8480-6", "mm[Hg]", 120}, {"8462-4", "mm[Hg]", 80}}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkYearOfVitals loads a year of six vital signs for 100 patients into the embedded
// store and times FHIR searches on it. The density is one reading per code every
// IOMT_FHIR_BENCH_MINUTES minutes (default 15: 21M readings); days and patients can be set with
// IOMT_FHIR_BENCH_DAYS and IOMT_FHIR_BENCH_PATIENTS.
func BenchmarkYearOfVitals(b *testing.B) {
	patients := envInt("IOMT_FHIR_BENCH_PATIENTS", 100)
	days := envInt("IOMT_FHIR_BENCH_DAYS", 365)
	step := time.Duration(envInt("IOMT_FHIR_BENCH_MINUTES", 15)) * time.Minute
	ctx := context.Background()
	st := openStore(b, b.TempDir())
	end := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	startT := end.AddDate(0, 0, -days)
	for p := range patients {
		id := fmt.Sprintf("patient-%03d", p)
		if err := st.CreatePatient(ctx, iomt.Patient{ID: id, Tenant: iomt.DefaultTenant, Name: id, CreatedAt: startT}); err != nil {
			b.Fatal(err)
		}
	}
	loadStart := time.Now()
	n := 0
	for day := range days {
		d0 := startT.AddDate(0, 0, day)
		var bs []iomt.Batch
		for p := range patients {
			id := fmt.Sprintf("patient-%03d", p)
			dev := fmt.Sprintf("monitor-%03d", p)
			bt := iomt.Batch{Tenant: iomt.DefaultTenant, Device: dev, Patient: id, Received: d0}
			for t := d0; t.Before(d0.Add(24 * time.Hour)); t = t.Add(step) {
				for i, c := range benchCodes {
					v := c.base + float64((t.Unix()/60+int64(i*7+p))%9) - 4
					bt.Observations = append(bt.Observations, iomt.Observation{Patient: id, Device: dev, Code: c.code, Time: t, Value: v, Unit: c.unit})
				}
			}
			n += len(bt.Observations)
			bs = append(bs, bt)
		}
		if _, err := st.Append(ctx, bs); err != nil {
			b.Fatal(err)
		}
	}
	load := time.Since(loadStart)
	b.Logf("loaded %d readings (%d patients × %d days × %d codes every %v) in %v: %.0f readings/s",
		n, patients, days, len(benchCodes), step, load.Round(time.Millisecond), float64(n)/load.Seconds())

	pol := policy.New()
	if err := pol.Reload(ctx, &policySource{Store: st}, end); err != nil {
		b.Fatal(err)
	}
	h, err := fhir.New(fhir.Config{Store: st, Catalog: codes.New(), Principal: bearerPrincipal, Policy: pol,
		Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return end }})
	if err != nil {
		b.Fatal(err)
	}
	get := func(b *testing.B, path string) {
		req := httptest.NewRequest("GET", "http://iomt/fhir/r4/"+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%s: %d %s", path, rec.Code, rec.Body.String())
		}
	}
	ge := func(d time.Duration) string { return end.Add(-d).Format("2006-01-02T15:04:05Z") }
	i := 0
	patient := func() string { i++; return fmt.Sprintf("patient-%03d", i%patients) }
	for _, q := range []struct{ name, path string }{
		{"search-last-hour", "Observation?category=vital-signs&date=ge" + ge(time.Hour) + "&patient="},
		{"search-last-day", "Observation?category=vital-signs&date=ge" + ge(24*time.Hour) + "&patient="},
		{"search-last-day-count-1000", "Observation?category=vital-signs&_count=1000&date=ge" + ge(24*time.Hour) + "&patient="},
		{"lastn", "Observation/$lastn?category=vital-signs&patient="},
		{"lastn-max-10", "Observation/$lastn?category=vital-signs&max=10&patient="},
		{"search-whole-year-count", "Observation?category=vital-signs&_summary=count&patient="},
	} {
		b.Run(q.name, func(b *testing.B) {
			for b.Loop() {
				get(b, q.path+patient())
			}
		})
	}
}

// BenchmarkAuthorisedRequests times requests through the policy and the audit (to memory),
// for the bootstrap principal (everything allowed, no team lookup) and for a clinician and a
// scoped token (team and scope checks, emergency check per returned patient), so the cost of
// access control shows as the difference.
func BenchmarkAuthorisedRequests(b *testing.B) {
	f := newFixture(b)
	for _, q := range []struct{ name, path string }{
		{"patient-read", "Patient/" + p1},
		{"patient-search", "Patient"},
		{"observation-search-10", "Observation?patient=" + p1 + "&category=vital-signs&code=8867-4&_count=10"},
	} {
		for _, who := range []string{token, "alice", "svc-all"} {
			name := who
			if who == token {
				name = "bootstrap"
			}
			b.Run(q.name+"/"+name, func(b *testing.B) {
				for b.Loop() {
					req := httptest.NewRequest("GET", "http://iomt/fhir/r4/"+q.path, nil)
					req.Header.Set("Authorization", "Bearer "+who)
					rec := httptest.NewRecorder()
					f.h.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("%s as %s: %d %s", q.path, name, rec.Code, rec.Body.String())
					}
					f.audit.take()
				}
			})
		}
	}
}
