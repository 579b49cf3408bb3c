package loopback

import (
	"net/url"
	"testing"
)

func TestHost(t *testing.T) {
	for h, want := range map[string]bool{
		"localhost": true, "LOCALHOST.": true, "api.localhost": true, "127.0.0.1": true, "127.8.9.1": true,
		"::1": true, "[::1]": true, "::ffff:127.0.0.1": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.1": false, "192.168.1.5": false, "example.org": false,
		"localhost.example.org": false, "fe80::1%lo": false, "127.0.0.1.nip.io": false, "notlocalhost": false,
	} {
		if got := Host(h); got != want {
			t.Errorf("Host(%q) = %v, want %v", h, got, want)
		}
	}
}

func TestAddr(t *testing.T) {
	for a, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:1883": true, "localhost:0": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "10.1.2.3:443": false, "127.0.0.1": false, "": false,
	} {
		if got := Addr(a); got != want {
			t.Errorf("Addr(%q) = %v, want %v", a, got, want)
		}
	}
}

func TestPlainHTTP(t *testing.T) {
	for raw, want := range map[string]bool{
		"http://ehr.example.org/fhir": true, "HTTP://10.0.0.9:8080/hook": true,
		"https://ehr.example.org/fhir": false, "http://127.0.0.1:9999/hook": false, "http://localhost/x": false,
		"http://[::1]:80/": false,
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := PlainHTTP(u); got != want {
			t.Errorf("PlainHTTP(%q) = %v, want %v", raw, got, want)
		}
	}
}

func FuzzHost(f *testing.F) {
	for _, s := range []string{"localhost", "[::1]", "127.0.0.1", "fe80::1%eth0", "x.localhost.", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = Host(s)
		_ = Addr(s)
		_ = Addr(s + ":80")
	})
}
