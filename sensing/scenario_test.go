package sensing

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestLoadScenarioErrors(t *testing.T) {
	const head = "name: x\ndevices:\n  - kind: ecg-patch\n"
	cases := []struct {
		name, doc, want string
	}{
		{"empty", "", "empty file"},
		{"not yaml", "name: [", "yaml"},
		{"no name", "devices:\n  - kind: cgm\n", "name: missing"},
		{"unknown top-level field", head + "timelime: []\n", `line 4: field timelime not found`},
		{"no devices", "name: x\n", "wears no device"},
		{"unknown device kind", "name: x\ndevices:\n  - kind: toaster\n", `line 3: devices[0]: kind: "toaster" is not one of`},
		{"unknown device field", "name: x\ndevices:\n  - kind: cgm\n    rat: 5\n", `line 4: device: unknown field "rat"`},
		{"bad rate", "name: x\ndevices:\n  - kind: ecg-patch\n    rate: 300\n", "no whole-millisecond sample period"},
		{"two of a kind", "name: x\ndevices:\n  - kind: cgm\n  - kind: cgm\n", "line 4: devices[1]: a second cgm"},
		{"unknown quantity", "name: x\nbaseline:\n  hr: 70\n  hrr: 80\ndevices:\n  - kind: cgm\n", `line 4: baseline: unknown quantity "hrr"`},
		{"out of range", "name: x\nbaseline:\n  spo2: 120\ndevices:\n  - kind: cgm\n", "line 3: baseline: spo2 120 outside 50..100 %"},
		{"not a number", "name: x\nbaseline:\n  hr: fast\ndevices:\n  - kind: cgm\n", `line 3: hr: want a number, got "fast"`},
		{"dbp above sbp", "name: x\nbaseline: {sbp: 90, dbp: 95}\ndevices:\n  - kind: cgm\n", "dbp 95 not below sbp 90"},
		{"missing at", head + "timeline:\n  - rhythm: af\n", "line 5: timeline[0]: at: missing"},
		{"bad duration", head + "timeline:\n  - at: 10 minutes\n    rhythm: af\n", `line 5: invalid duration "10 minutes"`},
		{"bad rhythm", head + "timeline:\n  - at: 1m\n    rhythm: vf\n", `line 5: timeline[0]: rhythm: "vf" is not one of sinus, af`},
		{"unknown event field", head + "timeline:\n  - at: 1m\n    rythm: af\n", `line 6: timeline event: unknown field "rythm"`},
		{"set glucose", head + "timeline:\n  - at: 1m\n    set: {glucose: 50}\n", "line 6: set: glucose is driven by the glucose model"},
		{"fault without device", head + "timeline:\n  - at: 1m\n    fault: lead-off\n", "device: missing"},
		{"fault on absent device", head + "timeline:\n  - at: 1m\n    device: cgm\n    fault: offline\n", `the patient wears no "cgm"`},
		{"wrong fault for device", "name: x\ndevices:\n  - kind: ecg-patch\n  - kind: cgm\ntimeline:\n  - at: 1m\n    device: cgm\n    fault: lead-off\n", "lead-off applies to an ecg-patch"},
		{"exercise without for", head + "timeline:\n  - at: 1m\n    exercise: 0.5\n", "exercise: needs for"},
		{"measure streaming device", head + "timeline:\n  - at: 1m\n    measure: ecg-patch\n", "takes no on-demand measurement"},
		{"bad start clock", "name: x\nstart_clock: 25:00\ndevices:\n  - kind: cgm\n", "start_clock"},
		{"bad diabetes", "name: x\npatient: {diabetes: type3}\ndevices:\n  - kind: cgm\n", `patient.diabetes: "type3"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadScenario(strings.NewReader(c.doc))
			if err == nil {
				t.Fatalf("accepted:\n%s", c.doc)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestLoadScenarioReadError(t *testing.T) {
	_, err := LoadScenario(failReader{})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("got %v", err)
	}
}

func TestLoadScenarioReadme(t *testing.T) {
	// The example in README.md must load and say what the README says it does.
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i := strings.Index(s, "```yaml\n")
	j := strings.Index(s[i+8:], "```")
	if i < 0 || j < 0 {
		t.Fatal("no yaml example in README.md")
	}
	sc, err := LoadScenario(strings.NewReader(s[i+8 : i+8+j]))
	if err != nil {
		t.Fatalf("README example: %v", err)
	}
	if sc.Name != "example" || len(sc.Devices) != 3 || len(sc.Timeline) != 4 || sc.Timeline[1].Over != 30*time.Minute {
		t.Errorf("README example parsed as %+v", sc)
	}
	p := NewPatient(sc, 1, t0)
	if es := run(p, 0, time.Minute); len(es) == 0 {
		t.Error("README example emits nothing")
	}
}

func FuzzLoadScenario(f *testing.F) {
	for _, name := range []string{"sepsis", "device-fault", "t1d-nocturnal-hypo"} {
		data, err := scenarioFiles.ReadFile("scenarios/" + name + ".yaml")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	f.Add("name: x\ndevices:\n  - kind: ecg-patch\ntimeline:\n  - at: 1s\n    set: {hr: 30}\n")
	f.Fuzz(func(t *testing.T, doc string) {
		sc, err := LoadScenario(strings.NewReader(doc))
		if err != nil {
			return
		}
		// Whatever loads must run.
		p := NewPatient(sc, 1, t0)
		p.Advance(t0.Add(3 * time.Second))
	})
}
