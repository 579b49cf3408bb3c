// Package agenttest helps test the gateway end to end: it makes IHE PCD-01 ORU^R01 messages,
// sends them over MLLP as a bedside monitor does, and runs the gateway in a child process
// (the test binary itself) that a test can kill with SIGKILL and start again.
package agenttest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/iomt/iomt/gateway/agent"
	"github.com/iomt/iomt/wire/hl7v2/mllp"
)

// ORU is an ORU^R01 from a pulse oximeter/ECG monitor with equipment id eui (OBX-18 of the
// MDS): heart rate (MDC 147842 → LOINC 8867-4, /min) and SpO2 (MDC 150456 → 59408-5, %) at
// time at. control is MSH-10.
func ORU(eui, control string, at time.Time, hr, spo2 float64) []byte {
	ts := at.UTC().Format("20060102150405.000") + "+0000"
	segs := []string{
		`MSH|^~\&|MON^` + eui + `^EUI-64|WARD|||` + ts + `||ORU^R01^ORU_R01|` + control + `|P|2.6|||NE|AL`,
		`PID|||PAT-` + eui + `^^^Hospital^PI||Doe^John`,
		`OBR|1|` + control + `^MON^` + eui + `^EUI-64|` + control + `^MON^` + eui + `^EUI-64|182777000^monitoring of patient^SNOMED-CT|||` + ts,
		`OBX|1||69837^MDC_DEV_METER_PHYSIO_MULTI_PARAM_MDS^MDC|1|||||||X|||` + ts + `||||` + eui + `^EUI-64`,
		fmt.Sprintf(`OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC|1.0.0.1|%g|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||%s`, hr, ts),
		fmt.Sprintf(`OBX|3|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.0.0.2|%g|262688^MDC_DIM_PERCENT^MDC|||||R|||%s`, spo2, ts),
	}
	return []byte(strings.Join(segs, "\r") + "\r")
}

// Identities is an identity file mapping equipment ids to devices.
func Identities(devices map[string]string) string {
	var b strings.Builder
	b.WriteString("devices:\n")
	for dev, eui := range devices {
		fmt.Fprintf(&b, "  - device: %s\n    kind: bedside-monitor\n    equipment: [%q]\n", dev, eui)
	}
	return b.String()
}

// Send sends one message on a fresh MLLP connection to addr and returns the ACK's MSA-1
// (AA, AE, AR) and MSA-3/ERR text.
func Send(addr string, msg []byte) (code, text string, err error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	return SendOn(c, msg)
}

// SendOn sends one message on an open connection and reads the ACK.
func SendOn(c net.Conn, msg []byte) (code, text string, err error) {
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if err := mllp.Write(c, msg); err != nil {
		return "", "", err
	}
	ack, err := mllp.NewReader(c, 0).ReadMessage()
	if err != nil {
		return "", "", err
	}
	for _, seg := range strings.Split(string(ack), "\r") {
		if f := strings.Split(seg, "|"); f[0] == "MSA" && len(f) > 1 {
			code = f[1]
			if len(f) > 3 {
				text = f[3]
			}
		} else if f[0] == "ERR" && len(f) > 8 {
			text += " " + f[8]
		}
	}
	return code, text, nil
}

// childEnv names the configuration file a child process runs the gateway with.
const childEnv = "IOMT_AGENTTEST_CONFIG"

// RunChild is the body of the test a child process runs: when the environment names a
// configuration, it runs the gateway until SIGTERM (or SIGKILL) and exits; otherwise it
// skips. Put it in a test named as in StartChild's run pattern.
func RunChild(t *testing.T) {
	path := os.Getenv(childEnv)
	if path == "" {
		t.Skip("runs only as the gateway child process of another test")
	}
	code := func() int {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		cfg, err := agent.LoadConfig(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		a, err := agent.New(cfg, log)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("AGENT-READY mllp=%s http=%s\n", a.MLLPAddr(), a.HTTPAddr())
		if err := a.Run(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}()
	os.Exit(code)
}

// Child is a gateway running in a child process.
type Child struct {
	MLLPAddr, HTTPAddr string
	cmd                *exec.Cmd
	done               chan struct{}
	logf               *os.File
}

// StartChild runs the test binary again with -test.run=runPattern (a test that calls
// RunChild) and the configuration file config, and waits until the gateway listens. The
// child's log goes to logPath (appended).
func StartChild(t testing.TB, runPattern, config, logPath string) *Child {
	t.Helper()
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c := &Child{done: make(chan struct{}), logf: lf}
	c.cmd = exec.Command(os.Args[0], "-test.run="+runPattern, "-test.count=1")
	c.cmd.Env = append(os.Environ(), childEnv+"="+config)
	c.cmd.Stderr = lf
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "AGENT-READY ") {
				ready <- sc.Text()
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() { _ = c.cmd.Wait(); close(c.done); lf.Close() }()
	select {
	case line := <-ready:
		for _, f := range strings.Fields(line)[1:] {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "mllp":
				c.MLLPAddr = v
			case "http":
				c.HTTPAddr = v
			}
		}
	case <-c.done:
		log, _ := os.ReadFile(logPath)
		t.Fatalf("gateway child exited before it was ready:\n%s", log)
	case <-time.After(30 * time.Second):
		c.Kill()
		t.Fatal("gateway child not ready after 30s")
	}
	t.Cleanup(c.Kill)
	return c
}

// Kill sends SIGKILL and waits for the process to be gone.
func (c *Child) Kill() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Kill()
	<-c.done
}

// Stop sends SIGTERM and waits up to 20 s for a clean exit.
func (c *Child) Stop() error {
	select {
	case <-c.done:
		return nil
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		if !c.cmd.ProcessState.Success() {
			return fmt.Errorf("gateway child: %v", c.cmd.ProcessState)
		}
		return nil
	case <-time.After(20 * time.Second):
		c.Kill()
		return fmt.Errorf("gateway child did not stop within 20s of SIGTERM")
	}
}

// Fleet plays bedside monitors: each device sends an ORU^R01 every Period to the gateway at
// the address last given to SetAddr and, like a real monitor, sends a message again until it
// gets an AA. Message i of a device is dated At(i), so its readings are told apart by time.
type Fleet struct {
	Devices []string
	EUIs    map[string]string // device → equipment id
	Base    time.Time
	Period  time.Duration

	addr atomic.Value // string

	mu     sync.Mutex
	acked  map[string][]int // message indexes acknowledged, per device
	resent map[string]map[int]bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

// At is the reading time of a device's message i: one second apart from Base.
func (f *Fleet) At(i int) time.Time { return f.Base.Add(time.Duration(i) * time.Second) }

// SetAddr points the monitors at a gateway (again, after it restarted on another port).
func (f *Fleet) SetAddr(addr string) { f.addr.Store(addr) }

// Resent reports whether device sent its message i more than once.
func (f *Fleet) Resent(device string, i int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.resent[device][i]
}

// Start starts sending.
func (f *Fleet) Start() {
	f.acked, f.resent, f.stop = map[string][]int{}, map[string]map[int]bool{}, make(chan struct{})
	for _, d := range f.Devices {
		f.resent[d] = map[int]bool{}
		f.wg.Add(1)
		go f.run(d)
	}
}

func (f *Fleet) run(dev string) {
	defer f.wg.Done()
	tick := time.NewTicker(f.Period)
	defer tick.Stop()
	for i := 0; ; i++ {
		msg := ORU(f.EUIs[dev], fmt.Sprintf("%s-%d", dev, i), f.At(i), float64(60+i%60), float64(90+i%10))
		for try := 0; ; try++ {
			select {
			case <-f.stop:
				return
			default:
			}
			if try > 0 {
				f.mu.Lock()
				f.resent[dev][i] = true
				f.mu.Unlock()
				time.Sleep(50 * time.Millisecond)
			}
			code, _, err := Send(f.addr.Load().(string), msg)
			if err == nil && code == "AA" {
				f.mu.Lock()
				f.acked[dev] = append(f.acked[dev], i)
				f.mu.Unlock()
				break
			}
		}
		select {
		case <-f.stop:
			return
		case <-tick.C:
		}
	}
}

// Halt stops sending and returns the indexes of the messages acknowledged with AA, per
// device.
func (f *Fleet) Halt() map[string][]int {
	close(f.stop)
	f.wg.Wait()
	return f.acked
}
