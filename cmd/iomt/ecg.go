package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/iomt/iomt/analytics/ecg"
	"github.com/iomt/iomt/wire/wfdb"
)

const ecgUsage = `Usage: iomt ecg eval --db DIR [--records 100,101,...] [--rate HZ] [--noise MV [--noise-kind K]] [--json]

Evaluates the QRS detector and the AF detector against a WFDB database's reference
annotations (.atr) as in ANSI/AAMI EC57: beat by beat with a 150 ms match window, every beat
annotation code counted as a beat, whole records from their first sample; AF as duration
sensitivity and positive predictivity over the records whose reference contains AF, with
reference-marked atrial flutter excluded from the AF comparison as EC57's reference
implementation (epicmp) does: AF detected during annotated flutter counts neither for nor
against the detector, and the figure without that exclusion is printed beside it.
With --rate the lead is first resampled (linear interpolation) to test another sampling rate;
with --noise, noise of that RMS (mV, seeded by record name) is added, as a stress test on
signals the detector was not developed on: --noise-kind white (default), mains (60 Hz),
baseline (respiration and electrode drift), muscle (bursts above 20 Hz) or motion (bursts of
electrode motion below 10 Hz, in the QRS band).
`

func ecgCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, ecgUsage)
		return 2
	}
	switch args[0] {
	case "eval":
		return ecgEval(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, ecgUsage)
		return 0
	}
	fmt.Fprintf(stderr, "iomt ecg: unknown subcommand %q\n\n%s", args[0], ecgUsage)
	return 2
}

// recordResult is one record's evaluation.
type recordResult struct {
	Record string `json:"record"`
	Lead   string `json:"lead"`
	Beats  int    `json:"beats"`
	ecg.Match
	Se     float64 `json:"se"`
	PPV    float64 `json:"ppv"`
	AFRef  float64 `json:"afRefSeconds"`
	AFDet  float64 `json:"afDetSeconds"`
	AFBoth float64 `json:"afBothSeconds"`
	// AFInAFL is detected AF during reference atrial flutter: excluded from AFDet's share in
	// the EC57 positive predictivity.
	AFInAFL float64 `json:"afInFlutterSeconds"`
	Seconds float64 `json:"seconds"`
	CPU     float64 `json:"analysisSeconds"` // wall-clock time of the analysis alone
}

type evalReport struct {
	DB      string         `json:"db"`
	Records []recordResult `json:"records"`
	Gross   ecg.Match      `json:"gross"`
	Se      float64        `json:"se"`
	PPV     float64        `json:"ppv"`
	// The AF figures are absent when no record's reference has AF.
	AFRecords []string `json:"afRecords,omitempty"`
	AFSe      *float64 `json:"afSe,omitempty"`
	AFPPV     *float64 `json:"afPpv,omitempty"`
	// AFPPVWithFlutter is the PPV had AF detected during reference flutter counted as false.
	AFPPVWithFlutter *float64 `json:"afPpvWithFlutter,omitempty"`
	// RealTime is recorded seconds of ECG analysed per second of one core.
	RealTime float64 `json:"realTime"`
}

func ecgEval(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ecg eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, ecgUsage); fs.PrintDefaults() }
	db := fs.String("db", "", "directory of the WFDB database (records' .hea, .dat and .atr)")
	list := fs.String("records", "", "comma-separated record names; default every .hea in --db")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	rate := fs.Float64("rate", 0, "resample the lead to this rate in Hz (125–1000) before analysis; 0: as recorded")
	noise := fs.Float64("noise", 0, "add noise of this RMS in mV (stress test)")
	noiseKind := fs.String("noise-kind", "white", "kind of --noise: "+strings.Join(noiseKinds, ", "))
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *rate != 0 && !(*rate >= 125 && *rate <= 1000) {
		fmt.Fprintf(stderr, "iomt ecg eval: --rate must be 0 or within 125–1000 Hz, got %v\n", *rate)
		return 2
	}
	if !(*noise >= 0 && *noise <= 10) {
		fmt.Fprintf(stderr, "iomt ecg eval: --noise must be within 0–10 mV, got %v\n", *noise)
		return 2
	}
	if err := checkNoiseKind(*noiseKind); err != nil {
		fmt.Fprintf(stderr, "iomt ecg eval: %v\n", err)
		return 2
	}
	if *db == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "iomt ecg eval: --db is required and no positional arguments are taken\n\n")
		fs.Usage()
		return 2
	}
	names, err := recordNames(*db, *list)
	if err != nil {
		fmt.Fprintf(stderr, "iomt ecg eval: %v\n", err)
		return 1
	}
	rep := evalReport{DB: *db}
	var afBoth, afRef, afDet, afInAFL, secs, cpu float64
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			fmt.Fprintf(stderr, "iomt ecg eval: %v\n", err)
			return 1
		}
		r, err := evalRecord(*db, name, *rate, *noise, *noiseKind)
		if err != nil {
			fmt.Fprintf(stderr, "iomt ecg eval: %v\n", err)
			return 1
		}
		rep.Records = append(rep.Records, r)
		rep.Gross = rep.Gross.Add(r.Match)
		if r.AFRef > 0 {
			rep.AFRecords = append(rep.AFRecords, r.Record)
			afBoth += r.AFBoth
			afRef += r.AFRef
			afDet += r.AFDet
			afInAFL += r.AFInAFL
		}
		secs += r.Seconds
		cpu += r.CPU
	}
	rep.Se, rep.PPV = rep.Gross.Se(), rep.Gross.PPV()
	if afRef > 0 {
		se, ppv, ppvAll := afBoth/afRef, fratio(afBoth, afDet-afInAFL), fratio(afBoth, afDet)
		rep.AFSe, rep.AFPPV, rep.AFPPVWithFlutter = &se, &ppv, &ppvAll
	}
	rep.RealTime = fratio(secs, cpu)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "iomt ecg eval: %v\n", err)
			return 1
		}
		return 0
	}
	printEval(stdout, rep)
	return 0
}

func fratio(a, b float64) float64 {
	if b == 0 {
		return 1
	}
	return a / b
}

func printEval(w io.Writer, rep evalReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "record\tlead\tbeats\tTP\tFP\tFN\tSe %\t+P %\tAF ref s\tAF det s\tAF both s\tAF in AFL s\t")
	for _, r := range rep.Records {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%.2f\t%.2f\t%.0f\t%.0f\t%.0f\t%.0f\t\n", r.Record, r.Lead, r.Beats, r.TP, r.FP, r.FN,
			100*r.Se, 100*r.PPV, r.AFRef, r.AFDet, r.AFBoth, r.AFInAFL)
	}
	g := rep.Gross
	fmt.Fprintf(tw, "gross\t\t%d\t%d\t%d\t%d\t%.2f\t%.2f\t\t\t\t\t\n", g.TP+g.FN, g.TP, g.FP, g.FN, 100*rep.Se, 100*rep.PPV)
	tw.Flush()
	fmt.Fprintf(w, "\nQRS gross: Se %.3f %%, +P %.3f %% (TP %d, FP %d, FN %d) over %d records\n",
		100*rep.Se, 100*rep.PPV, g.TP, g.FP, g.FN, len(rep.Records))
	if rep.AFSe != nil {
		fmt.Fprintf(w, "AF duration: Se %.2f %%, PPV %.2f %% over records with AF (%s); reference atrial flutter excluded as in EC57 (PPV %.2f %% if AF called during it counted as false)\n",
			100**rep.AFSe, 100**rep.AFPPV, strings.Join(rep.AFRecords, ","), 100**rep.AFPPVWithFlutter)
	} else {
		fmt.Fprintln(w, "AF duration: no record with AF in the reference")
	}
	fmt.Fprintf(w, "speed: %.0f× real time on one core (analysis only, file reading excluded)\n", rep.RealTime)
}

func recordNames(db, list string) ([]string, error) {
	if list != "" {
		var out []string
		for _, s := range strings.Split(list, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		if len(out) == 0 {
			return nil, errors.New("--records names no record")
		}
		return out, nil
	}
	m, err := filepath.Glob(filepath.Join(db, "*.hea"))
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", db, err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("no .hea file in %s", db)
	}
	var out []string
	for _, p := range m {
		out = append(out, strings.TrimSuffix(filepath.Base(p), ".hea"))
	}
	sort.Strings(out)
	return out, nil
}

// preferredLead picks MLII where the record has it (the lead the MIT-BIH annotators used
// first), else the first signal.
func preferredLead(h wfdb.Header) int {
	for i, s := range h.Signals {
		if s.Description == "MLII" {
			return i
		}
	}
	return 0
}

func evalRecord(db, name string, rate, noise float64, noiseKind string) (recordResult, error) {
	rec, err := wfdb.ReadRecord(db, name)
	if err != nil {
		return recordResult{}, err
	}
	anns, err := wfdb.ReadAnnotations(db, name, "atr")
	if err != nil {
		return recordResult{}, err
	}
	if len(rec.Signals) == 0 {
		return recordResult{}, fmt.Errorf("record %s has no signal", name)
	}
	lead := preferredLead(rec.Header)
	x := rec.Physical(lead)
	fsr := rec.Frequency
	scale := 1.0 // reference sample numbers to analysed ones
	if rate > 0 && rate != fsr {
		scale = rate / fsr
		x = resample(x, scale)
		fsr = rate
	}
	if noise > 0 {
		h := fnv.New64a()
		h.Write([]byte(name))
		rng := rand.New(rand.NewPCG(h.Sum64(), 1))
		addNoise(x, fsr, noise, noiseKind, rng)
	}
	n := int64(len(x))
	ref, afRef, aflRef := referenceEpisodes(anns, scale, n)

	cfg := ecg.DefaultConfig(fsr)
	mon, err := ecg.NewMonitor(cfg)
	if err != nil {
		return recordResult{}, fmt.Errorf("record %s: %w", name, err)
	}
	var det []int64
	var afDet []ecg.Interval
	chunk := int(fsr) // about one second per call, as devices send it
	start := time.Now()
	collect := func(o ecg.Output) {
		for _, b := range o.Beats {
			det = append(det, b.Sample)
		}
		for _, e := range o.Episodes {
			if e.Kind == ecg.AF {
				afDet = append(afDet, ecg.Interval{Start: e.Onset, End: e.Offset})
			}
		}
	}
	for i := 0; i < len(x); i += chunk {
		collect(mon.Process(x[i:min(i+chunk, len(x))]))
	}
	collect(mon.Flush())
	cpu := time.Since(start).Seconds()

	window := int64(0.150*fsr + 0.5)
	m := ecg.MatchBeats(ref, det, window)
	both, lr, ld := ecg.Overlap(afRef, afDet)
	inAFL, _, _ := ecg.Overlap(aflRef, afDet)
	return recordResult{
		Record: name, Lead: rec.Signals[lead].Description, Beats: len(ref), Match: m, Se: m.Se(), PPV: m.PPV(),
		AFRef: float64(lr) / fsr, AFDet: float64(ld) / fsr, AFBoth: float64(both) / fsr, AFInAFL: float64(inAFL) / fsr,
		Seconds: float64(n) / fsr, CPU: cpu,
	}, nil
}

// referenceEpisodes reads the reference beats and the AF and atrial-flutter episodes, in
// analysed samples (reference sample × scale), from a record's annotations. An episode runs
// from its rhythm annotation ("(AFIB", "(AFL") to the next rhythm annotation or the record's
// end n, as epicmp reads them.
func referenceEpisodes(anns []wfdb.Annotation, scale float64, n int64) (beats []int64, af, afl []ecg.Interval) {
	var open *[]ecg.Interval
	start := int64(0)
	for _, a := range anns {
		at := int64(math.Round(float64(a.Sample) * scale))
		if a.Code.IsBeat() {
			beats = append(beats, at)
		}
		if a.Code != wfdb.Rhythm {
			continue
		}
		if open != nil {
			*open = append(*open, ecg.Interval{Start: start, End: at})
			open = nil
		}
		switch a.Aux {
		case "(AFIB":
			open, start = &af, at
		case "(AFL":
			open, start = &afl, at
		}
	}
	if open != nil {
		*open = append(*open, ecg.Interval{Start: start, End: n})
	}
	return beats, af, afl
}

// resample changes a signal's rate by the factor k by linear interpolation.
func resample(x []float64, k float64) []float64 {
	n := int(float64(len(x)) * k)
	out := make([]float64, n)
	for i := range out {
		t := float64(i) / k
		j := int(t)
		if j+1 >= len(x) {
			out[i] = x[len(x)-1]
			continue
		}
		f := t - float64(j)
		out[i] = x[j]*(1-f) + x[j+1]*f
	}
	return out
}
