package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/iomt/iomt/gateway/agent"
)

const gatewayUsage = `Usage:
  iomt gateway --config FILE [--log-level info] [--log-format text] [--allow-plaintext-uplink]

Runs the edge gateway: bedside monitors send HL7 v2 over MLLP, a BLE bridge posts GATT
notifications and local sensors SenML over HTTP or CoAP; readings are kept in a crash-safe
spool (edge alarms alert locally while the uplink is down), and the uplink forwards them to the
cloud over MQTT 5 with TLS, QoS 1, resuming after outages and restarts. FILE is YAML;
docs/GATEWAY.md documents every key. SIGHUP re-reads the identity file.

`

// gatewayCommand runs `iomt gateway`. Exit codes: 0 stopped by a signal, 1 failure, 2 usage.
func gatewayCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, gatewayUsage); fs.PrintDefaults() }
	configFile := fs.String("config", "", "YAML configuration file (required)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	allowPlain := fs.Bool("allow-plaintext-uplink", false, "let an mqtt:// (plaintext) uplink reach another machine (as uplink.allow_plaintext: true); only on a network protected otherwise")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *configFile == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "iomt gateway: want --config FILE and no other arguments\n\n")
		fs.Usage()
		return 2
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "iomt gateway: %v\n", err)
		return 2
	}
	cfg, err := agent.LoadConfig(*configFile)
	if err != nil {
		fmt.Fprintf(stderr, "iomt gateway: %v\n", err)
		return 2
	}
	cfg.Uplink.AllowPlaintext = cfg.Uplink.AllowPlaintext || *allowPlain
	a, err := agent.New(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "iomt gateway: %v\n", err)
		return 1
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = a.ReloadIdentities() // logs the outcome itself
			}
		}
	}()
	fmt.Fprintf(stdout, "iomt gateway: MLLP %s  HTTP %s  CoAP %s  uplink %s  data %s\n",
		orNone(a.MLLPAddr()), orNone(a.HTTPAddr()), orNone(a.CoAPAddr()), cfg.Uplink.URL, cfg.DataDir)
	if err := a.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "iomt gateway: %v\n", err)
		return 1
	}
	return 0
}

func orNone(s string) string {
	if s == "" {
		return "off"
	}
	return s
}
