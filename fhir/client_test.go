package fhir_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// nodeClient installs fhir-kit-client (pinned by testdata/client/package-lock.json) into a
// cache directory keyed by the lockfile, once, and returns the directory.
func nodeClient(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: skipping the fhir-kit-client test", tool)
		}
	}
	src := filepath.Join("testdata", "client")
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "iomt-fhir-client-"+hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"package.json", "package-lock.json", "read.mjs", "scoped.mjs"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "fhir-kit-client", "package.json")); err != nil {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("npm ci of fhir-kit-client failed (offline?): %v\n%s", err, out)
		}
	}
	return dir
}

func TestThirdPartyClient(t *testing.T) {
	dir := nodeClient(t)
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "read.mjs", f.srv.URL+"/fhir/r4", token, p1)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fhir-kit-client: %v\n%s", err, stderr.String())
	}
	var got struct {
		FHIRVersion, PatientName, DeviceKind, OneCode, NotFound, PrevFirst string
		PatientIDs, DeviceIDs, ObsIDs                                      []string
		Total, Pages                                                       int
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("client output: %v\n%s", err, out)
	}
	// What our own API lists, for comparison.
	all := f.get(t, "Observation?patient="+p1+"&category=vital-signs&_count=1000&_sort=-date")
	var want []string
	for _, e := range entries(all) {
		want = append(want, e["id"].(string))
	}
	if got.FHIRVersion != "4.0.1" || got.PatientName != "Ada Lovelace" || got.NotFound != "404 OperationOutcome" {
		t.Errorf("client saw %+v", got)
	}
	if slices.Sort(got.PatientIDs); !slices.Equal(got.PatientIDs, []string{p1, p2}) {
		t.Errorf("patients paged one by one: %v", got.PatientIDs)
	}
	if len(got.DeviceIDs) != 3 || got.DeviceKind == "" {
		t.Errorf("devices: %v %q", got.DeviceIDs, got.DeviceKind)
	}
	if got.Total != len(want) || !slices.Equal(got.ObsIDs, want) || got.Pages != (len(want)+49)/50 {
		t.Errorf("observations: total %d, %d ids in %d pages; want %d", got.Total, len(got.ObsIDs), got.Pages, len(want))
	}
	if p := got.Pages; p > 1 && got.PrevFirst != want[(p-2)*50] {
		t.Errorf("previous link of the last page starts at %s, want %s", got.PrevFirst, want[(p-2)*50])
	}
	t.Logf("fhir-kit-client read %d observations in %d pages", len(got.ObsIDs), got.Pages)
}

// TestThirdPartyClientWithScopes: fhir-kit-client with a token scoped to
// patient/Observation.rs?category=vital-signs and patient/Patient.r reads the vital signs and
// the patient, and is refused the rest with a reason.
func TestThirdPartyClientWithScopes(t *testing.T) {
	dir := nodeClient(t)
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "scoped.mjs", f.srv.URL+"/fhir/r4", "svc-vitals", p1)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fhir-kit-client: %v\n%s", err, stderr.String())
	}
	var got struct {
		VitalsTotal                            int
		Categories                             []string
		PatientName                            string
		AllObservations, PatientSearch, Device string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("client output: %v\n%s", err, out)
	}
	want := total(f.get(t, "Observation?patient="+p1+"&category=vital-signs&_summary=count"))
	if got.VitalsTotal != want || !slices.Equal(got.Categories, []string{"vital-signs"}) || got.PatientName != "Ada Lovelace" {
		t.Errorf("client read %+v, want %d vital signs", got, want)
	}
	for what, v := range map[string]string{"all observations": got.AllObservations, "patient search": got.PatientSearch, "devices": got.Device} {
		if !strings.HasPrefix(v, "403 the token's scopes do not permit") {
			t.Errorf("%s: %q, want a 403 naming the scope", what, v)
		}
	}
}
