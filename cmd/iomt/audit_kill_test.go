package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/node"
)

// TestKill9LeavesNoReadWithoutItsRecord reads a patient's data from several clients while
// the server is killed with SIGKILL, with a live stream open: after the restart every read a
// client received has its audit record, the stream's opening is recorded, and the trail
// verifies.
func TestKill9LeavesNoReadWithoutItsRecord(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	s := startServer(t, bin, dir)
	var p struct{ ID string }
	s.api(t, "POST", "/api/v1/patients", map[string]string{"name": "Audited Patient"}, &p)

	// A stream opened, then left open when the server dies.
	streamed := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+s.http+"/api/v1/patients/"+p.ID+"/stream", nil)
		req.Header.Set("Authorization", "Bearer secret-admin-bootstrap")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			streamed <- 0
			return
		}
		streamed <- resp.StatusCode
		buf := make([]byte, 256)
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				resp.Body.Close()
				return
			}
		}
	}()
	if code := <-streamed; code != 200 {
		t.Fatalf("stream: %d", code)
	}

	var served atomic.Int64 // reads whose 200 reached a client
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", "http://"+s.http+"/api/v1/patients/"+p.ID+"/vitals", nil)
				req.Header.Set("Authorization", "Bearer secret-admin-bootstrap")
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				var b bytes.Buffer
				_, err = b.ReadFrom(resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode == 200 && strings.Contains(b.String(), "vitals") {
					served.Add(1)
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.exited
	close(stop)
	wg.Wait()
	if served.Load() == 0 {
		t.Fatal("no read was served before the kill")
	}

	st, err := node.OpenStore(context.Background(), node.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := st.AuditEvents(context.Background(), iomt.AuditFilter{Patient: p.ID})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	var reads, opened int64
	for _, e := range evs {
		switch {
		case e.Action == "vitals.read" && e.Status == 200:
			reads++
		case e.Action == "stream.open":
			opened++
		}
	}
	t.Logf("%d reads served, %d recorded; %d records in all", served.Load(), reads, len(evs))
	if reads < served.Load() {
		t.Fatalf("%d reads reached a client but only %d have an audit record", served.Load(), reads)
	}
	if opened != 1 {
		t.Fatalf("stream openings recorded: %d, want 1", opened)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"audit", "verify", "--data-dir", dir}, &out, &errb, func(string) string { return "" }); code != 0 {
		t.Fatalf("audit verify after the kill: exit %d\n%s%s", code, out.String(), errb.String())
	}
}

// A stream that is opened and closed is recorded twice: at open and at close, with its length.
func TestStreamOpenAndCloseRecorded(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	s := startServer(t, bin, dir)
	var p struct{ ID string }
	s.api(t, "POST", "/api/v1/patients", map[string]string{"name": "Streamed Patient"}, &p)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+s.http+"/api/v1/patients/"+p.ID+"/stream", nil)
	req.Header.Set("Authorization", "Bearer secret-admin-bootstrap")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", resp, err)
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	resp.Body.Close()
	time.Sleep(500 * time.Millisecond)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-s.exited
	st, err := node.OpenStore(context.Background(), node.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.AuditEvents(context.Background(), iomt.AuditFilter{Patient: p.ID, Action: "stream."})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Action != "stream.open" || evs[1].Action != "stream.close" || evs[1].Detail["duration"] == "" || evs[0].Actor != "bootstrap" {
		t.Fatalf("stream records: %+v", evs)
	}
}
