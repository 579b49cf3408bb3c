package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/iomt/iomt/analytics/glucose"
	"github.com/iomt/iomt/analytics/glucose/agpreport"
	"github.com/iomt/iomt/wire/cgmcsv"
)

const cgmUsage = `Usage:
  iomt cgm report --csv FILE [--format generic|dexcom|libre] [--unit mg/dL|mmol/L] [--subject ID]
                  [--tz ZONE] [--json] [--html OUT]
  iomt cgm eval-predict --csv FILE [--horizon 30m] [--tz ZONE] [--json]

report prints the consensus metrics of each subject (text, or JSON with --json) and with --html
writes the AGP report page. eval-predict replays the readings through the predicted-low alert
with iomt's predictor and Nightscout's AR2 and scores both against the real lows.

--tz is the patients' time zone (IANA name such as America/New_York, or a fixed offset such as
UTC-05:00; default UTC, with a warning when the file's times carry no offset; "Local" is refused,
as a report must name its zone): it reads timestamps written without an offset and sets the time
of day of the AGP. --unit gives the glucose unit when the file's header does not; --subject names
the patient of a single-patient export or of a generic file without an id column.

report prints 3 significant digits, as iglu does, the rows skipped with the first reasons, and a
caution for a subject with under 14 days of data or the CGM active under 70 % of the time.
`

// cgmCommand runs `iomt cgm ...`. Exit codes: 0 ok, 1 failure, 2 usage.
func cgmCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, cgmUsage)
		return 2
	}
	switch args[0] {
	case "report":
		return cgmReport(ctx, args[1:], stdout, stderr)
	case "eval-predict":
		return cgmEvalPredict(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, cgmUsage)
		return 0
	}
	fmt.Fprintf(stderr, "iomt cgm: unknown subcommand %q\n\n%s", args[0], cgmUsage)
	return 2
}

// cgmInput are the flags both subcommands share.
type cgmInput struct {
	csv, format, tz, unit, subject string
}

func (in *cgmInput) register(fs *flag.FlagSet) {
	fs.StringVar(&in.csv, "csv", "", "CSV file to read (required)")
	fs.StringVar(&in.format, "format", "", "generic, dexcom or libre (default: detected)")
	fs.StringVar(&in.tz, "tz", "UTC", "patients' time zone: IANA name or fixed offset like UTC-05:00 (not Local)")
	fs.StringVar(&in.unit, "unit", "", "mg/dL or mmol/L, when the file does not say")
	fs.StringVar(&in.subject, "subject", "", "patient id for a single-patient export or a generic file without id column")
}

// cgmParseFlags parses args; a non-negative code means the command ends with it.
func cgmParseFlags(fs *flag.FlagSet, args []string, in *cgmInput, stderr io.Writer) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "iomt cgm %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2
	}
	if in.csv == "" {
		fmt.Fprintf(stderr, "iomt cgm %s: --csv FILE is required\n", fs.Name())
		return 2
	}
	switch in.format {
	case "", "generic", "dexcom", "libre":
	default:
		fmt.Fprintf(stderr, "iomt cgm %s: --format must be generic, dexcom or libre, got %q\n", fs.Name(), in.format)
		return 2
	}
	switch in.unit {
	case "", "mg/dL", "mmol/L":
	default:
		fmt.Fprintf(stderr, "iomt cgm %s: --unit must be mg/dL or mmol/L, got %q\n", fs.Name(), in.unit)
		return 2
	}
	if _, err := cgmcsv.ParseZone(in.tz); err != nil {
		fmt.Fprintf(stderr, "iomt cgm %s: --tz: %v\n", fs.Name(), err)
		return 2
	}
	return -1
}

// cgmSubject is one patient's readings as the analytics take them.
type cgmSubject struct {
	id       string
	readings []glucose.Reading
}

type cgmData struct {
	file     string
	loc      *time.Location
	res      *cgmcsv.Result
	subjects []cgmSubject
}

func cgmLoad(in cgmInput) (*cgmData, error) {
	loc, err := cgmcsv.ParseZone(in.tz)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(in.csv)
	if err != nil {
		return nil, fmt.Errorf("--csv: %w", err)
	}
	defer f.Close()
	res, err := cgmcsv.Parse(f, cgmcsv.Options{Format: cgmcsv.Format(in.format), Location: loc,
		Unit: cgmcsv.Unit(in.unit), Subject: in.subject})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.csv, err)
	}
	d := &cgmData{file: in.csv, loc: loc, res: res}
	ids, by := res.Subjects()
	for _, id := range ids {
		s := cgmSubject{id: id}
		for _, r := range by[id] {
			s.readings = append(s.readings, glucose.Reading{Time: r.Time, MgdL: r.MgdL})
		}
		d.subjects = append(d.subjects, s)
	}
	return d, nil
}

// cgmSubjectReport is one subject's report, for the table, JSON (via cgmNaNToNull) and HTML.
type cgmSubjectReport struct {
	ID      string
	Summary glucose.Summary
	AGP     []glucose.AGPPoint
	Days    []cgmDay
	days    []glucose.Day
}

type cgmDay struct {
	Date     string
	Readings int
	Mean     float64
	InRange  float64
	Below70  float64
	Above180 float64
}

type cgmReportDoc struct {
	File        string
	Format      string
	Unit        string
	TimeZone    string
	Skipped     []cgmcsv.Skip
	Substituted int
	Subjects    []cgmSubjectReport
	notable     []cgmcsv.Skip // the first skip reasons worth showing
}

func cgmReport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var in cgmInput
	in.register(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	htmlOut := fs.String("html", "", "write the AGP report page to this file")
	if code := cgmParseFlags(fs, args, &in, stderr); code >= 0 {
		return code
	}
	d, err := cgmLoad(in)
	if err != nil {
		fmt.Fprintf(stderr, "iomt cgm report: %v\n", err)
		return 1
	}
	tzGiven := false
	fs.Visit(func(f *flag.Flag) { tzGiven = tzGiven || f.Name == "tz" })
	if d.res.WallClock && !tzGiven {
		fmt.Fprintf(stderr, "iomt cgm report: warning: %s has times without a UTC offset, taken as UTC; give --tz for the patients' zone\n", d.file)
	}
	doc := cgmReportDoc{File: d.file, Format: string(d.res.Format), Unit: string(d.res.Unit), TimeZone: in.tz,
		Skipped: d.res.Skipped, Substituted: d.res.Substituted, notable: d.res.NotableSkips(3)}
	if doc.Skipped == nil {
		doc.Skipped = []cgmcsv.Skip{}
	}
	for _, s := range d.subjects {
		if err := ctx.Err(); err != nil {
			fmt.Fprintf(stderr, "iomt cgm report: %v\n", err)
			return 1
		}
		r := cgmSubjectReport{ID: s.id, Summary: glucose.Summarize(s.readings, d.loc),
			AGP: glucose.AGP(s.readings, d.loc), days: glucose.Daily(s.readings, d.loc)}
		for _, day := range r.days {
			r.Days = append(r.Days, cgmDay{Date: day.Date.Format("2006-01-02"), Readings: len(day.Readings),
				Mean: day.Mean, InRange: day.InRange, Below70: day.Below70, Above180: day.Above180})
		}
		doc.Subjects = append(doc.Subjects, r)
	}
	if *htmlOut != "" {
		if err := cgmWriteHTML(*htmlOut, doc, d.loc); err != nil {
			fmt.Fprintf(stderr, "iomt cgm report: %v\n", err)
			return 1
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(cgmNaNToNull(doc)); err != nil {
			fmt.Fprintf(stderr, "iomt cgm report: %v\n", err)
			return 1
		}
		return 0
	}
	cgmPrintReport(stdout, doc)
	if *htmlOut != "" {
		fmt.Fprintf(stdout, "\nAGP report written to %s\n", *htmlOut)
	}
	return 0
}

// cgmNaNToNull builds the JSON document with null for NaN, which encoding/json refuses: a
// metric is NaN when a subject has too little data for it (MAGE over a few hours).
func cgmNaNToNull(doc cgmReportDoc) map[string]any {
	subjects := make([]any, 0, len(doc.Subjects))
	for _, s := range doc.Subjects {
		sum := s.Summary
		m := map[string]any{
			"readings": sum.Readings, "start": sum.Start, "end": sum.End, "days": num(sum.Days),
			"mean": num(sum.Mean), "sd": num(sum.SD), "cv": num(sum.CV), "gmi": num(sum.GMI),
			"below_54": num(sum.Below54), "below_70": num(sum.Below70), "in_range_70_180": num(sum.InRange),
			"above_180": num(sum.Above180), "above_250": num(sum.Above250), "active_percent": num(sum.ActivePct),
			"quartiles": []any{num(sum.Quartiles[0]), num(sum.Quartiles[1]), num(sum.Quartiles[2]), num(sum.Quartiles[3]), num(sum.Quartiles[4])},
			"mage":      num(sum.MAGE), "conga": num(sum.CONGA), "modd": num(sum.MODD), "sample_minutes": num(sum.SampleStep),
		}
		agp := make([]any, 0, len(s.AGP))
		for _, p := range s.AGP {
			agp = append(agp, map[string]any{"minute": p.Minute, "n": p.N, "p5": num(p.P5), "p25": num(p.P25),
				"p50": num(p.P50), "p75": num(p.P75), "p95": num(p.P95)})
		}
		days := make([]any, 0, len(s.Days))
		for _, d := range s.Days {
			days = append(days, map[string]any{"date": d.Date, "readings": d.Readings, "mean": num(d.Mean),
				"in_range_70_180": num(d.InRange), "below_70": num(d.Below70), "above_180": num(d.Above180)})
		}
		subjects = append(subjects, map[string]any{"id": s.ID, "summary": m, "agp": agp, "days": days})
	}
	return map[string]any{"file": doc.File, "format": doc.Format, "unit": doc.Unit, "time_zone": doc.TimeZone,
		"skipped": doc.Skipped, "substituted_low_high": doc.Substituted, "subjects": subjects}
}

// num rounds for output and turns NaN into null.
func num(x float64) any {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return math.Round(x*1e4) / 1e4
}

// cgmSig prints x to 3 significant digits as iglu does (0.137, 26.9, 124), in plain decimals
// also where 'g' would switch to an exponent (1000, not 1e+03).
func cgmSig(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	if x == 0 {
		return "0"
	}
	// Round first: rounding can add a digit (99.96 is 100), which sets the decimals.
	r, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 3, 64), 64)
	decimals := max(0, 2-int(math.Floor(math.Log10(math.Abs(r)))))
	return strconv.FormatFloat(r, 'f', decimals, 64)
}

// count is n things in English: "1 row", "2 rows".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

func cgmPrintReport(w io.Writer, doc cgmReportDoc) {
	fmt.Fprintf(w, "%s: %s file, %s, times in %s; %s skipped, %s substituted\n",
		doc.File, doc.Format, doc.Unit, doc.TimeZone, count(len(doc.Skipped), "row"), count(doc.Substituted, "Low/High value"))
	if len(doc.notable) > 0 {
		var reasons []string
		for _, s := range doc.notable {
			reasons = append(reasons, s.String())
		}
		more := ""
		if len(doc.Skipped) > len(doc.notable) {
			more = "; … (--json lists all)"
		}
		fmt.Fprintf(w, "skipped %s%s\n", strings.Join(reasons, "; "), more)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "subject\tdays\tactive %\tmean\tSD\tCV %\tGMI %\t<54 %\t<70 %\t70-180 %\t>180 %\t>250 %\tMAGE\tCONGA\tMODD\t")
	var short []string
	for _, s := range doc.Subjects {
		m := s.Summary
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.ID, m.Days,
			cgmSig(m.ActivePct), cgmSig(m.Mean), cgmSig(m.SD), cgmSig(m.CV), cgmSig(m.GMI),
			cgmSig(m.Below54), cgmSig(m.Below70), cgmSig(m.InRange), cgmSig(m.Above180), cgmSig(m.Above250),
			cgmSig(m.MAGE), cgmSig(m.CONGA), cgmSig(m.MODD))
		if why := agpreport.Shortfall(m); len(why) > 0 {
			short = append(short, fmt.Sprintf("  %s: %s", s.ID, strings.Join(why, ", ")))
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\nglucose in mg/dL, 3 significant digits; metrics as in Battelino et al. 2019 and iglu (see docs/VALIDATION.md)\n")
	if len(short) > 0 {
		fmt.Fprintf(w, "\ntoo little data: the consensus asks for at least %d days with the CGM active at least %d%% of the time;\n"+
			"GMI and the other metrics of these subjects may not reflect usual glucose:\n%s\n",
			agpreport.MinDays, agpreport.MinActivePct, strings.Join(short, "\n"))
	}
}

// cgmWriteHTML writes the AGP report page, replacing the file only once it is complete.
func cgmWriteHTML(path string, doc cgmReportDoc, loc *time.Location) error {
	page := agpreport.Page{Source: doc.File, Location: loc, Generated: time.Now()}
	for _, s := range doc.Subjects {
		page.Subjects = append(page.Subjects, agpreport.Subject{ID: s.ID, Summary: s.Summary, AGP: s.AGP, Days: s.days})
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".agp-*.html")
	if err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file private; a report is meant to be shared.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("--html: %w", err)
	}
	w := bufio.NewWriter(tmp)
	if err := agpreport.Render(w, page); err != nil {
		tmp.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("--html: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	return nil
}

// cgmPredictRow is one predictor's pooled score.
type cgmPredictRow struct {
	Predictor   string  `json:"predictor"`
	Lows        int     `json:"lows"`
	Warned      int     `json:"warned"`
	Caught15    int     `json:"caught_15min"`
	CaughtShare float64 `json:"caught_15min_share"`
	MedianLead  float64 `json:"median_lead_minutes"`
	Alerts      int     `json:"alerts"`
	FalseAlerts int     `json:"false_alerts"`
	Days        float64 `json:"days"`      // covered by data, as glucose.PredictionResult.Days
	SpanDays    float64 `json:"span_days"` // first reading to last, summed over subjects
	FalsePerDay float64 `json:"false_alerts_per_day"`
}

type cgmPredictDoc struct {
	File     string                                `json:"file"`
	Horizon  string                                `json:"horizon"`
	Pooled   []cgmPredictRow                       `json:"pooled"`
	Subjects map[string][]glucose.PredictionResult `json:"subjects"`
	// Verdict compares the first predictor (iomt's) with the second (AR2) on the two counts
	// the issue judges: lows caught ≥ 15 min ahead and false alerts per day.
	Verdict cgmVerdict `json:"verdict"`
}

// cgmVerdict says, for each count, whether iomt's predictor is "ahead", "tied" or "behind".
type cgmVerdict struct {
	Caught     string `json:"caught_15min"`
	FalseAlert string `json:"false_per_day"`
	Both       bool   `json:"ahead_on_both"`
}

// verdict compares a and b: more lows caught is ahead, fewer false alerts per day is ahead.
func verdict(a, b cgmPredictRow) cgmVerdict {
	cmp := func(better, worse bool) string {
		switch {
		case better:
			return "ahead"
		case worse:
			return "behind"
		}
		return "tied"
	}
	v := cgmVerdict{
		Caught:     cmp(a.Caught15 > b.Caught15, a.Caught15 < b.Caught15),
		FalseAlert: cmp(a.FalsePerDay < b.FalsePerDay, a.FalsePerDay > b.FalsePerDay),
	}
	v.Both = v.Caught == "ahead" && v.FalseAlert == "ahead"
	return v
}

func cgmEvalPredict(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eval-predict", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var in cgmInput
	in.register(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	horizon := fs.Duration("horizon", 30*time.Minute, "how far ahead a low is predicted (20m-30m is usual)")
	if code := cgmParseFlags(fs, args, &in, stderr); code >= 0 {
		return code
	}
	if *horizon < 5*time.Minute || *horizon > time.Hour {
		fmt.Fprintf(stderr, "iomt cgm eval-predict: --horizon must be between 5m and 1h, got %v\n", *horizon)
		return 2
	}
	d, err := cgmLoad(in)
	if err != nil {
		fmt.Fprintf(stderr, "iomt cgm eval-predict: %v\n", err)
		return 1
	}
	predictors := []glucose.Predictor{glucose.Trend{}, glucose.AR2{}}
	doc := cgmPredictDoc{File: d.file, Horizon: horizon.String(), Subjects: map[string][]glucose.PredictionResult{}}
	for _, p := range predictors {
		row := cgmPredictRow{Predictor: p.Name()}
		var leads []float64
		for _, s := range d.subjects {
			if err := ctx.Err(); err != nil {
				fmt.Fprintf(stderr, "iomt cgm eval-predict: %v\n", err)
				return 1
			}
			r, err := glucose.EvaluatePredictor(s.readings, p, *horizon)
			if err != nil {
				fmt.Fprintf(stderr, "iomt cgm eval-predict: %v\n", err)
				return 1
			}
			doc.Subjects[s.id] = append(doc.Subjects[s.id], r)
			row.Lows += len(r.Lows)
			row.Caught15 += r.Caught15
			row.Alerts += r.Alerts
			row.FalseAlerts += r.FalseAlerts
			row.Days += r.Days
			row.SpanDays += r.SpanDays
			for _, l := range r.Lows {
				if l.Warned {
					row.Warned++
					leads = append(leads, l.Lead.Minutes())
				}
			}
		}
		if row.Lows > 0 {
			row.CaughtShare = float64(row.Caught15) / float64(row.Lows)
		}
		if row.Days > 0 {
			row.FalsePerDay = float64(row.FalseAlerts) / row.Days
		}
		slices.Sort(leads)
		row.MedianLead = glucose.Quantile(leads, 0.5)
		if math.IsNaN(row.MedianLead) {
			row.MedianLead = 0
		}
		doc.Pooled = append(doc.Pooled, row)
	}
	doc.Verdict = verdict(doc.Pooled[0], doc.Pooled[1])
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(doc); err != nil {
			fmt.Fprintf(stderr, "iomt cgm eval-predict: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stdout, "%s: %s, %.1f days with data (%.1f days first to last reading), horizon %v\n",
		d.file, count(len(d.subjects), "subject"), doc.Pooled[0].Days, doc.Pooled[0].SpanDays, *horizon)
	fmt.Fprintf(stdout, "real low: ≥ 15 min below 70 mg/dL; caught: first predicted-low alert ≥ 15 min before onset;\n")
	fmt.Fprintf(stdout, "false alert: no reading below 70 within horizon + 15 min; false/day: per day with data\n")
	fmt.Fprintf(stdout, "(gaps over 15 min between readings excluded)\n\n")
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "predictor\tlows\twarned\tcaught ≥15 min\tmedian lead min\talerts\tfalse\tfalse/day\t")
	for _, r := range doc.Pooled {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d (%.0f%%)\t%.0f\t%d\t%d\t%.3f\t\n", r.Predictor, r.Lows, r.Warned, r.Caught15,
			100*r.CaughtShare, r.MedianLead, r.Alerts, r.FalseAlerts, r.FalsePerDay)
	}
	tw.Flush()
	v := doc.Verdict
	fmt.Fprintf(stdout, "\n%s against %s: lows caught ≥ 15 min %s, false alerts per day %s", doc.Pooled[0].Predictor, doc.Pooled[1].Predictor, v.Caught, v.FalseAlert)
	if v.Both {
		fmt.Fprintf(stdout, " — ahead on both counts")
	}
	fmt.Fprintln(stdout)
	return 0
}
