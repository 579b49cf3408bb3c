// Package sim drives simulated patients (package sensing) against an iomt server the way real
// devices do: each device is its own MQTT 5 client with the credentials the API issued, and
// sends one SenML pack per message at QoS 1.
package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/iomt/iomt/sensing"
)

// Device is one provisioned device and its credentials.
type Device struct {
	Kind     string `json:"kind"`
	ID       string `json:"id"`
	Password string `json:"password"`
	Topic    string `json:"topic"`
}

// Bed is a simulated patient, provisioned on a server.
type Bed struct {
	Patient  string `json:"patient"`
	Name     string `json:"name"`
	Scenario string `json:"scenario"`
	// Kinds, if set, keeps only these of the scenario's devices (a bench of pulse oximeters).
	Kinds   []string `json:"kinds,omitempty"`
	Seed    uint64   `json:"seed"`
	Devices []Device `json:"devices"`
	// Lead and Speed set the patient's clock: it starts Lead in the past and runs Speed times
	// faster than the wall clock until it has caught up with now, then in real time. A story of
	// hours thus plays in minutes without a reading ever being stamped in the future.
	Lead  time.Duration `json:"lead,omitempty"`
	Speed float64       `json:"speed,omitempty"`
	// Compress plays the scenario's timeline (events, ramps, durations) this many times
	// faster while readings stay in real time: a deterioration written over an hour shows in
	// minutes on a live dashboard. Slow physiology (glucose) needs Speed instead.
	Compress float64 `json:"compress,omitempty"`
}

// scenario returns the bed's scenario with its devices filtered and its timeline compressed.
func (b Bed) scenario(sc sensing.Scenario) sensing.Scenario {
	if len(b.Kinds) > 0 {
		sc = sc.Clone()
		var keep []sensing.DeviceSpec
		for _, d := range sc.Devices {
			if slices.Contains(b.Kinds, d.Kind) {
				keep = append(keep, d)
			}
		}
		sc.Devices = keep
		// Events about devices that are gone would point nowhere; the physiology stays.
		for i := range sc.Timeline {
			e := &sc.Timeline[i]
			if e.Device != "" && !slices.Contains(b.Kinds, e.Device) {
				e.Device, e.Fault, e.Battery, e.Drain = "", "", nil, nil
			}
			if e.Measure != "" && !slices.Contains(b.Kinds, e.Measure) {
				e.Measure = ""
			}
		}
	}
	if b.Compress <= 1 {
		return sc
	}
	sc = sc.Clone()
	k := b.Compress
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) / k) }
	for i := range sc.Timeline {
		e := &sc.Timeline[i]
		e.At, e.Over, e.For = scale(e.At), scale(e.Over), scale(e.For)
	}
	sc.Duration = scale(sc.Duration)
	return sc
}

// API is a small client of the REST API, for provisioning.
type API struct {
	Base  string // e.g. http://127.0.0.1:8080
	Token string // admin token
	HTTP  *http.Client
}

func (a API) post(ctx context.Context, path string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimRight(a.Base, "/")+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	req.Header.Set("Content-Type", "application/json")
	hc := a.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}

var givenNames = []string{"Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken", "Radia", "Niklaus", "Hedy", "Tim", "Katherine", "Dennis", "Lynn", "Claude", "Sophie", "Vint"}
var familyNames = []string{"Okafor", "Lindqvist", "Moreau", "Tanaka", "Novak", "Haddad", "Kowalski", "Fernandes", "Abebe", "MacLeod", "Rossi", "Nguyen", "Schmidt", "Osei", "Ivanova", "Kaur", "Yilmaz", "Dubois", "Papadopoulos", "Jensen"}

// Provision registers a patient and its devices for each bed (Patient and Devices filled in),
// a few beds at a time.
func Provision(ctx context.Context, a API, beds []Bed) ([]Bed, error) {
	scs, err := scenarios(beds)
	if err != nil {
		return nil, err
	}
	out := make([]Bed, len(beds))
	stamp := time.Now().Unix() % 100000
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	work := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				b, err := provisionBed(ctx, a, scs, beds[i], i, stamp)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				out[i] = b
				mu.Unlock()
			}
		}()
	}
	for i := range beds {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

func provisionBed(ctx context.Context, a API, scs map[string]sensing.Scenario, b Bed, i int, stamp int64) (Bed, error) {
	sc, ok := scs[b.Scenario]
	if !ok {
		return b, fmt.Errorf("bed %d: unknown scenario %q", i, b.Scenario)
	}
	sc = b.scenario(sc)
	if b.Name == "" {
		b.Name = fmt.Sprintf("%s %s", givenNames[i%len(givenNames)], familyNames[(i/len(givenNames)+i*7)%len(familyNames)])
	}
	var p struct{ ID string }
	err := a.post(ctx, "/api/v1/patients", map[string]string{"name": b.Name, "mrn": fmt.Sprintf("SIM-%d-%06d", stamp, i)}, &p)
	if err != nil {
		return b, fmt.Errorf("provision bed %d: %w", i, err)
	}
	b.Patient = p.ID
	b.Devices = nil
	for _, d := range sc.Devices {
		var dev struct {
			MQTT struct{ Username, Password, Topic string }
		}
		if err := a.post(ctx, "/api/v1/devices", map[string]string{"patient": p.ID, "kind": d.Kind}, &dev); err != nil {
			return b, fmt.Errorf("provision bed %d: %w", i, err)
		}
		b.Devices = append(b.Devices, Device{Kind: d.Kind, ID: dev.MQTT.Username, Password: dev.MQTT.Password, Topic: dev.MQTT.Topic})
	}
	return b, nil
}

// SaveBeds writes provisioned beds (with secrets) to a file readable only by its owner.
func SaveBeds(path string, beds []Bed) error {
	data, err := json.MarshalIndent(beds, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// LoadBeds reads what SaveBeds wrote.
func LoadBeds(path string) ([]Bed, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var beds []Bed
	if err := json.Unmarshal(data, &beds); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return beds, nil
}
