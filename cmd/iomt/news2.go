package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/iomt/iomt/analytics/news2"
)

const news2Usage = `Usage: iomt news2 --rr N --spo2 N [--scale 2] [--oxygen] --sbp N --hr N --acvpu A|C|V|P|U --temp N [--json]

Scores one set of observations with the National Early Warning Score 2 (RCP 2017, chart 1)
and prints the sub-scores, the total and the clinical response band. Every parameter is
required: a missing one is an error, never a score of 0.
`

func news2Command(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("news2", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, news2Usage); fs.PrintDefaults() }
	rr := fs.Float64("rr", 0, "respiration rate, breaths per minute")
	spo2 := fs.Float64("spo2", 0, "SpO2, %")
	scale := fs.Int("scale", 1, "SpO2 scale: 1, or 2 for hypercapnic respiratory failure with a prescribed 88–92 % target")
	oxygen := fs.Bool("oxygen", false, "on supplemental oxygen (default: air)")
	sbp := fs.Float64("sbp", 0, "systolic blood pressure, mmHg")
	hr := fs.Float64("hr", 0, "pulse, per minute")
	acvpu := fs.String("acvpu", "", "consciousness: A (alert), C (new confusion), V (voice), P (pain), U (unresponsive)")
	temp := fs.Float64("temp", 0, "temperature, °C")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	// A parameter left out must not default to a normal value and score 0.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var missing []string
	for _, name := range []string{"rr", "spo2", "sbp", "hr", "acvpu", "temp"} {
		if !set[name] {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 || fs.NArg() > 0 {
		if len(missing) > 0 {
			fmt.Fprintf(stderr, "iomt news2: missing %s: every parameter is needed for a score\n\n", strings.Join(missing, ", "))
		} else {
			fmt.Fprintf(stderr, "iomt news2: unexpected argument %q\n\n", fs.Arg(0))
		}
		fs.Usage()
		return 2
	}
	level, err := news2.ParseACVPU(*acvpu)
	if err != nil {
		fmt.Fprintf(stderr, "iomt news2: --acvpu: %v\n", err)
		return 2
	}
	v := news2.Vitals{RespRate: *rr, SpO2: *spo2, Scale: news2.Scale(*scale), Oxygen: *oxygen, SBP: *sbp,
		Pulse: *hr, ACVPU: level, Temp: *temp}
	r, err := news2.Score(v)
	if err != nil {
		fmt.Fprintf(stderr, "iomt news2: %v\n", err)
		return 2
	}
	if *asJSON {
		out := struct {
			news2.Result
			Response string `json:"response"`
		}{r, r.Band.Response(r.Total)}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "iomt news2: %v\n", err)
			return 1
		}
		return 0
	}
	air := "air"
	if *oxygen {
		air = "oxygen"
	}
	s := r.Sub
	fmt.Fprintf(stdout, "respiration rate  %6g /min    %d\n", *rr, s.RespRate)
	fmt.Fprintf(stdout, "SpO2 (scale %d)    %6g %%       %d\n", *scale, *spo2, s.SpO2)
	fmt.Fprintf(stdout, "air or oxygen     %6s         %d\n", air, s.AirOrOxygen)
	fmt.Fprintf(stdout, "systolic BP       %6g mmHg    %d\n", *sbp, s.SBP)
	fmt.Fprintf(stdout, "pulse             %6g /min    %d\n", *hr, s.Pulse)
	fmt.Fprintf(stdout, "consciousness     %6s         %d\n", level, s.Consciousness)
	fmt.Fprintf(stdout, "temperature       %6g °C      %d\n", *temp, s.Temp)
	red := ""
	if r.RedScore {
		red = " (a single parameter scores 3)"
	}
	fmt.Fprintf(stdout, "NEWS2 %d: %s risk%s\n%s\n", r.Total, r.Band, red, r.Band.Response(r.Total))
	return 0
}
