package mllp_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// medplumDir holds a third-party HL7 v2 client (Medplum's @medplum/hl7, from npm) and the
// script that sends a file with it; `npm ci` there installs it (.ci/run does).
var medplumDir = filepath.Join("testdata", "medplum")

// A client nobody here wrote sends PCD-01 messages over MLLP and reads correct ACKs: AA for
// the reference messages the gateway can forward (whose readings reach the sink with LOINC
// codes), AE for the one it cannot.
func TestThirdPartyClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: skipping the third-party HL7 client test")
	}
	if _, err := os.Stat(filepath.Join(medplumDir, "node_modules", "@medplum", "hl7")); err != nil {
		t.Skipf("the Medplum HL7 client is not installed (run npm ci in gateway/mllp/%s): skipping", medplumDir)
	}
	sink := &recordingSink{}
	h := start(t, sink, nil)
	host, port, _ := net.SplitHostPort(h.addr)
	send := func(name string) string {
		t.Helper()
		readData(t, name) // skips when the reference data is absent
		out, err := exec.Command(node, filepath.Join(medplumDir, "send.mjs"), host, port, filepath.Join(dataDir, name)).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: medplum client: %v\n%s", name, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return lines[len(lines)-1]
	}
	for _, c := range []struct {
		file, ack, code string
	}{
		{"ipf_valid-pcd01-request.hl7v2", "AA", "8480-6"},
		{"ipf_valid-oximeter-continua-wan.hl7v2", "AA", "59408-5"},
		{"ipf_valid-pcd01-request2.hl7v2", "AA", "8867-4"},
		{"ipf_valid-fitness-continua-wan.hl7v2", "AA", "MDC_HF_REPETITION_COUNT"},
		{"ipf_invalid-glucose-continua-wan.hl7v2", "AE", ""},
	} {
		before := len(sink.all())
		msa := send(c.file)
		if !strings.HasPrefix(msa, "MSA|"+c.ack+"|") {
			t.Errorf("%s: %s, want %s", c.file, msa, c.ack)
			continue
		}
		got := sink.all()[before:]
		if c.ack != "AA" {
			if len(got) != 0 {
				t.Errorf("%s: refused, yet %d packs stored", c.file, len(got))
			}
			continue
		}
		found := false
		for _, a := range got {
			for k := range values(a.pack) {
				found = found || strings.HasSuffix(k, ":"+c.code)
			}
		}
		if !found {
			t.Errorf("%s: no %s reading reached the sink: %+v", c.file, c.code, got)
		}
	}
}
