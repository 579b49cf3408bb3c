package cgmcsv

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iomt/iomt"
)

// Format names a CSV layout.
type Format string

// The layouts Parse reads. Auto sniffs the layout from the first rows.
const (
	Auto    Format = ""
	Generic Format = "generic"
	Dexcom  Format = "dexcom"
	Libre   Format = "libre"
)

// Unit is the glucose unit of a file.
type Unit string

// Glucose units. Readings always come out in mg/dL whatever the file's unit.
const (
	MgdL  Unit = "mg/dL"
	MmolL Unit = "mmol/L"
)

// Marker tells whether a reading is a measured value or a range limit stood in for a
// "Low"/"High" text.
type Marker uint8

// Markers.
const (
	Measured Marker = iota
	BelowRange
	AboveRange
)

func (m Marker) String() string {
	switch m {
	case BelowRange:
		return "below-range"
	case AboveRange:
		return "above-range"
	}
	return "measured"
}

// Range limits substituted for out-of-range texts, in mg/dL (the sensors' reporting limits).
const (
	DexcomLow  = 40
	DexcomHigh = 400
	LibreLow   = 40
	LibreHigh  = 500
)

// Plausibility bounds: a value outside them is a unit or data error, not a glucose level.
const (
	minPlausible = 10
	maxPlausible = 1000
)

// Reading is one sensor glucose value.
type Reading struct {
	Subject string
	Time    time.Time
	MgdL    float64
	Marker  Marker
}

// Skip records a row that carried no sensor glucose, and why.
type Skip struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// String is the skip as messages show it: "line 4: glucose "x" is not a number".
func (s Skip) String() string { return fmt.Sprintf("line %d: %s", s.Line, s.Reason) }

// Options control Parse.
type Options struct {
	// Format is the layout; Auto sniffs it.
	Format Format
	// Location is the zone of timestamps written without a UTC offset (Clarity and LibreView
	// write local wall-clock time). Nil refuses such timestamps rather than guessing.
	Location *time.Location
	// Unit overrides the unit named in the header; needed for a generic file whose glucose
	// column does not say its unit (mg/dL is assumed then, and mmol/L-looking data is refused).
	Unit Unit
	// Subject names the patient of a single-patient export (Clarity, LibreView) or of a
	// generic file without an id column. Empty: the name the export carries, else "1".
	Subject string
}

// Result is what Parse read.
type Result struct {
	Format      Format
	Unit        Unit
	Readings    []Reading // in file order
	Skipped     []Skip
	Substituted int // readings whose value is a range limit (Low/High markers)
	// WallClock is true when some timestamps carried no UTC offset and were read in
	// Options.Location: the zone the caller chose then decides every instant.
	WallClock bool

	unusable []int // indexes into Skipped of rows that held a reading that could not be used
}

// NotableSkips returns up to n skipped rows, the reasons most worth showing first: rows that
// held a reading which could not be used (unreadable timestamp or value, implausible glucose)
// come before rows that carry no reading at all (title, patient, event rows), each group in the
// order recorded.
func (r *Result) NotableSkips(n int) []Skip {
	out := make([]Skip, 0, min(n, len(r.Skipped)))
	for _, i := range r.unusable {
		if len(out) == n {
			return out
		}
		out = append(out, r.Skipped[i])
	}
	for i, s := range r.Skipped {
		if len(out) == n {
			break
		}
		if !slices.Contains(r.unusable, i) {
			out = append(out, s)
		}
	}
	return out
}

// skipSummary is the count of skipped rows and the first reasons, for an error message.
func skipSummary(r *Result) string {
	const shown = 3
	var b strings.Builder
	if len(r.Skipped) == 1 {
		b.WriteString("1 row skipped")
	} else {
		fmt.Fprintf(&b, "%d rows skipped", len(r.Skipped))
	}
	for i, s := range r.NotableSkips(shown) {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%s", sep, s)
	}
	if len(r.Skipped) > shown {
		b.WriteString("; …")
	}
	return b.String()
}

// Subjects groups the readings by subject in order of first appearance, each sorted by time.
func (r *Result) Subjects() (ids []string, readings map[string][]Reading) {
	readings = make(map[string][]Reading)
	for _, x := range r.Readings {
		if _, ok := readings[x.Subject]; !ok {
			ids = append(ids, x.Subject)
		}
		readings[x.Subject] = append(readings[x.Subject], x)
	}
	for _, id := range ids {
		slices.SortStableFunc(readings[id], func(a, b Reading) int { return a.Time.Compare(b.Time) })
	}
	return ids, readings
}

// Errors a caller may test for.
var (
	// ErrNoReadings: the file holds no sensor glucose at all.
	ErrNoReadings = errors.New("no sensor glucose readings")
	// ErrNoZone: wall-clock timestamps and no Options.Location to read them in.
	ErrNoZone = errors.New("no time zone given for timestamps without a UTC offset (Options.Location, --tz)")
)

// Parse reads a CSV export. A row that is not a sensor reading is skipped with a reason; a file
// whose layout, unit or time zone cannot be established is refused with an error.
func Parse(r io.Reader, opt Options) (*Result, error) {
	switch opt.Format {
	case Auto, Generic, Dexcom, Libre:
	default:
		return nil, fmt.Errorf("cgmcsv: unknown format %q (generic, dexcom or libre)", opt.Format)
	}
	if opt.Unit != "" && opt.Unit != MgdL && opt.Unit != MmolL {
		return nil, fmt.Errorf("cgmcsv: unknown unit %q (mg/dL or mmol/L)", opt.Unit)
	}
	br := bufio.NewReader(r)
	head, _ := br.Peek(4096)
	// Clarity exports start with a UTF-8 byte order mark.
	if bytes.HasPrefix(head, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
		head = head[3:]
	}
	firstLine, _, _ := bytes.Cut(head, []byte("\n"))
	cr := csv.NewReader(br)
	cr.Comma = sniffComma(firstLine)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = false

	// Where ';' or tab separates fields, the comma is the decimal separator.
	p := &parser{opt: opt, res: &Result{}, decimalComma: cr.Comma != ',', last: map[string]time.Time{}}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("cgmcsv: %w", err)
		}
		// The file's line, not the record's index: quoted fields may span lines.
		line, _ := cr.FieldPos(0)
		if err := p.row(line, rec); err != nil {
			return nil, fmt.Errorf("cgmcsv: line %d: %w", line, err)
		}
	}
	if err := p.finish(); err != nil {
		return nil, fmt.Errorf("cgmcsv: %w", err)
	}
	if len(p.res.Readings) == 0 {
		if p.res.Format == "" {
			return nil, fmt.Errorf("cgmcsv: %w: no header found", ErrNoReadings)
		}
		return nil, fmt.Errorf("cgmcsv: %s file: %w (%s)", p.res.Format, ErrNoReadings, skipSummary(p.res))
	}
	return p.res, nil
}

// sniffComma picks the delimiter the header line uses most: European LibreView exports use ';'.
func sniffComma(line []byte) rune {
	best, n := ',', bytes.Count(line, []byte(","))
	for _, c := range []rune{';', '\t'} {
		if k := bytes.Count(line, []byte(string(c))); k > n {
			best, n = c, k
		}
	}
	return best
}

type parser struct {
	opt          Options
	res          *Result
	decimalComma bool

	cols    columns
	subject string
	libre   []libreRow // LibreView rows wait for the date order to be known

	unitless struct{ small, large int } // values of a file that names no unit
	last     map[string]time.Time       // latest reading per subject, for the repeated hour
}

type columns struct {
	id, time, glucose int // generic (time and glucose for every layout)
	event, patient    int // Dexcom
	record            int // Libre
}

func (p *parser) skip(line int, format string, a ...any) {
	p.res.Skipped = append(p.res.Skipped, Skip{Line: line, Reason: fmt.Sprintf(format, a...)})
}

// reject skips a row that held a reading the parser could not use.
func (p *parser) reject(line int, format string, a ...any) {
	p.res.unusable = append(p.res.unusable, len(p.res.Skipped))
	p.skip(line, format, a...)
}

func (p *parser) row(line int, rec []string) error {
	for i := range rec {
		rec[i] = strings.TrimSpace(rec[i])
	}
	if isBlank(rec) {
		p.skip(line, "blank row")
		return nil
	}
	if p.res.Format == "" {
		return p.header(line, rec)
	}
	switch p.res.Format {
	case Generic:
		return p.generic(line, rec)
	case Dexcom:
		return p.dexcom(line, rec)
	default:
		return p.libreRow(line, rec)
	}
}

func isBlank(rec []string) bool {
	for _, f := range rec {
		if f != "" {
			return false
		}
	}
	return true
}

func lower(rec []string) []string {
	out := make([]string, len(rec))
	for i, f := range rec {
		out[i] = strings.ToLower(f)
	}
	return out
}

// header recognises the header row of each layout; rows before it (LibreView's title row) are
// skipped.
func (p *parser) header(line int, rec []string) error {
	l := lower(rec)
	want := p.opt.Format
	switch {
	case (want == Auto || want == Dexcom) && hasPrefix(l, "timestamp") >= 0 && hasPrefix(l, "event type") >= 0:
		return p.dexcomHeader(l)
	case (want == Auto || want == Libre) && hasPrefix(l, "device timestamp") >= 0 && hasPrefix(l, "record type") >= 0:
		return p.libreHeader(l)
	case (want == Auto || want == Libre) && line == 1 && (hasPrefix(l, "glucose data") == 0 || hasPrefix(l, "generated by") >= 0):
		// LibreView title row: "Glucose Data,Generated on,<date>,Generated by,<name>" (or
		// "Patient report,…" in some versions).
		if i := hasPrefix(l, "generated by"); i >= 0 && i+1 < len(rec) && p.opt.Subject == "" {
			p.subject = rec[i+1]
		}
		p.skip(line, "LibreView title row")
		return nil
	case want == Auto || want == Generic:
		err := p.genericHeader(l)
		if err == nil || want == Generic {
			return err
		}
	}
	if line > 3 {
		return fmt.Errorf("no %s header in the first rows", formatName(want))
	}
	p.skip(line, "not a header row")
	return nil
}

func formatName(f Format) string {
	if f == Auto {
		return "generic, Dexcom Clarity or LibreView"
	}
	return string(f)
}

func hasPrefix(l []string, prefix string) int {
	for i, f := range l {
		if strings.HasPrefix(f, prefix) {
			return i
		}
	}
	return -1
}

func index(l []string, names ...string) int {
	for _, n := range names {
		if i := slices.Index(l, n); i >= 0 {
			return i
		}
	}
	return -1
}

// unitOf reads the unit a column header names, e.g. "Glucose Value (mmol/L)".
func unitOf(h string) Unit {
	switch {
	case strings.Contains(h, "mmol"):
		return MmolL
	case strings.Contains(h, "mg/dl") || strings.Contains(h, "mgdl") || strings.Contains(h, "mg_dl"):
		return MgdL
	}
	return ""
}

func (p *parser) setUnit(fromHeader Unit) error {
	p.res.Unit = fromHeader
	if p.opt.Unit != "" {
		p.res.Unit = p.opt.Unit
	}
	return nil
}

func (p *parser) genericHeader(l []string) error {
	c := columns{
		id:      index(l, "id", "subject", "patient", "subject_id", "patient_id"),
		time:    index(l, "time", "timestamp", "datetime", "date_time", "time_utc"),
		glucose: -1,
	}
	for i, h := range l {
		if h == "gl" || h == "glucose" || h == "value" || h == "sgv" || strings.HasPrefix(h, "glucose") {
			c.glucose = i
			break
		}
	}
	if c.time < 0 || c.glucose < 0 {
		return fmt.Errorf("generic header needs a time column (time, timestamp, datetime, time_utc) and a glucose column (glucose, gl, value), got %q", strings.Join(l, ","))
	}
	p.cols = c
	p.res.Format = Generic
	return p.setUnit(unitOf(l[c.glucose]))
}

func (p *parser) dexcomHeader(l []string) error {
	c := columns{time: hasPrefix(l, "timestamp"), event: hasPrefix(l, "event type"),
		glucose: hasPrefix(l, "glucose value"), patient: hasPrefix(l, "patient info")}
	if c.glucose < 0 {
		return errors.New("dexcom: Clarity header has no \"Glucose Value\" column")
	}
	u := unitOf(l[c.glucose])
	if u == "" && p.opt.Unit == "" {
		return fmt.Errorf("dexcom: Clarity glucose column %q names no unit", l[c.glucose])
	}
	p.cols = c
	p.res.Format = Dexcom
	return p.setUnit(u)
}

func (p *parser) libreHeader(l []string) error {
	c := columns{time: hasPrefix(l, "device timestamp"), record: hasPrefix(l, "record type"),
		glucose: hasPrefix(l, "historic glucose")}
	if c.glucose < 0 {
		return errors.New("libre: LibreView header has no \"Historic Glucose\" column")
	}
	u := unitOf(l[c.glucose])
	if u == "" && p.opt.Unit == "" {
		return fmt.Errorf("libre: LibreView glucose column %q names no unit", l[c.glucose])
	}
	p.cols = c
	p.res.Format = Libre
	return p.setUnit(u)
}

func field(rec []string, i int) string {
	if i < 0 || i >= len(rec) {
		return ""
	}
	return rec[i]
}

func (p *parser) subjectOr(def string) string {
	switch {
	case p.opt.Subject != "":
		return p.opt.Subject
	case p.subject != "":
		return p.subject
	}
	return def
}

func (p *parser) generic(line int, rec []string) error {
	ts, g := field(rec, p.cols.time), field(rec, p.cols.glucose)
	if ts == "" || g == "" || strings.EqualFold(g, "NA") {
		p.reject(line, "no time or glucose")
		return nil
	}
	t, wall, err := parseTime(ts, p.opt.Location, genericLayouts)
	if errors.Is(err, ErrNoZone) {
		return err
	} else if err != nil {
		p.reject(line, "%v", err)
		return nil
	}
	id := field(rec, p.cols.id)
	if p.cols.id < 0 || id == "" {
		id = p.subjectOr("1")
	}
	if wall {
		p.res.WallClock = true
		t = p.laterOccurrence(id, t)
	}
	// A generic file names no sensor, so the strictest common limits stand in for Low/High.
	p.value(line, id, t, g, DexcomLow, DexcomHigh)
	return nil
}

func (p *parser) dexcom(line int, rec []string) error {
	ev := field(rec, p.cols.event)
	switch strings.ToLower(ev) {
	case "egv":
	case "firstname", "lastname":
		if name := field(rec, p.cols.patient); name != "" && p.opt.Subject == "" {
			p.subject = strings.TrimSpace(p.subject + " " + name)
		}
		p.skip(line, "patient information row (%s)", ev)
		return nil
	case "":
		p.skip(line, "row without event type")
		return nil
	case "calibration":
		p.skip(line, "calibration (fingerstick) row, not a sensor reading")
		return nil
	default:
		p.skip(line, "%s event row, not a sensor reading", ev)
		return nil
	}
	ts := field(rec, p.cols.time)
	if ts == "" {
		p.reject(line, "EGV row without timestamp")
		return nil
	}
	t, wall, err := parseTime(ts, p.opt.Location, dexcomLayouts)
	if errors.Is(err, ErrNoZone) {
		return err
	} else if err != nil {
		p.reject(line, "%v", err)
		return nil
	}
	id := p.subjectOr("1")
	if wall {
		p.res.WallClock = true
		t = p.laterOccurrence(id, t)
	}
	p.value(line, id, t, field(rec, p.cols.glucose), DexcomLow, DexcomHigh)
	return nil
}

type libreRow struct {
	line        int
	ts, glucose string
}

var libreRecordTypes = map[string]string{
	"1": "scan glucose", "2": "strip glucose", "3": "ketone", "4": "insulin", "5": "food",
	"6": "date change", "7": "notes",
}

func (p *parser) libreRow(line int, rec []string) error {
	rt := field(rec, p.cols.record)
	if rt != "0" {
		name := libreRecordTypes[rt]
		if name == "" {
			name = "unknown record type " + strconv.Quote(rt)
		}
		if rt == "1" {
			p.skip(line, "scan glucose row: the 15-minute historic series is the CGM record, a scan would count twice")
		} else {
			p.skip(line, "%s row, not historic sensor glucose", name)
		}
		return nil
	}
	p.libre = append(p.libre, libreRow{line: line, ts: field(rec, p.cols.time), glucose: field(rec, p.cols.glucose)})
	return nil
}

func (p *parser) finish() error {
	if p.res.Format != Libre || len(p.libre) == 0 {
		return p.checkUnit()
	}
	layout, err := libreLayout(p.libre)
	if err != nil {
		return err
	}
	if p.opt.Location == nil {
		return errNoZone(p.libre[0].ts)
	}
	name := layoutName(layout)
	for _, r := range p.libre {
		if r.ts == "" {
			p.reject(r.line, "historic glucose row without timestamp")
			continue
		}
		t, err := time.ParseInLocation(layout, r.ts, p.opt.Location)
		if err != nil {
			p.reject(r.line, "timestamp %q is not a date and time in the file's layout (%s)", r.ts, name)
			continue
		}
		p.res.WallClock = true
		if err := plausibleTime(r.ts, t); err != nil {
			p.reject(r.line, "%v", err)
			continue
		}
		id := p.subjectOr("1")
		p.value(r.line, id, p.laterOccurrence(id, t), r.glucose, LibreLow, LibreHigh)
	}
	return p.checkUnit()
}

// libreLayout picks the date layout of a LibreView file, which writes dates in the account's
// locale (MM-DD-YYYY or DD-MM-YYYY) with nothing saying which. The layout that reads the most
// rows qualifies (a corrupt row such as 32-03-2024 is skipped with its reason, not a reason to
// refuse the file), and one ambiguous date settles nothing, so among those the one whose
// readings span the shortest time wins: an export covers one contiguous wear period, and the
// wrong order scatters it over months (1–12 March read month-first runs from Jan 3 to Dec 3).
// Equal spans come from dates whose day equals the month, which read the same either way, or
// mirror each other (Jan 2 and Feb 1); then the layout that keeps the rows in time order wins,
// as exports list them so, and after that the earlier one in libreLayouts.
func libreLayout(rows []libreRow) (string, error) {
	stamped := 0
	for _, r := range rows {
		if r.ts != "" {
			stamped++
		}
	}
	best, bestFit, bestSpan, bestBack := "", 0, time.Duration(0), 0
	for _, l := range libreLayouts {
		// A layout missing more rows than the best so far fits fewer: it cannot win, and
		// reading on would parse every row with every layout.
		fit, span, back, ok := libreFit(l, rows, stamped-bestFit)
		if !ok || fit == 0 {
			continue
		}
		if best == "" || fit > bestFit || fit == bestFit && (span < bestSpan || span == bestSpan && back < bestBack) {
			best, bestFit, bestSpan, bestBack = l, fit, span, back
		}
	}
	if best == "" {
		for _, r := range rows {
			if r.ts != "" {
				return "", fmt.Errorf("libre: timestamps such as %q match no known date layout", r.ts)
			}
		}
		return "", errors.New("libre: no historic glucose row has a timestamp")
	}
	return best, nil
}

// layoutName writes a Go time layout as people read date layouts: "02-01-2006 15:04" is
// "DD-MM-YYYY hh:mm".
func layoutName(layout string) string {
	return strings.NewReplacer("2006", "YYYY", "01", "MM", "02", "DD", "15", "hh", "04", "mm", "05", "ss").Replace(layout)
}

// libreFit reads the timestamps with layout and reports how many fit it, the time those span
// and how many of them step back in time from the one before; ok is false, and the reading
// stops, once more than maxMiss timestamps do not fit. The rows are read as UTC: the zone
// shifts them all alike.
func libreFit(layout string, rows []libreRow, maxMiss int) (fit int, span time.Duration, back int, ok bool) {
	var first, last, prev time.Time
	miss := 0
	for _, r := range rows {
		if r.ts == "" {
			continue
		}
		t, err := time.Parse(layout, r.ts)
		if err != nil {
			if miss++; miss > maxMiss {
				return 0, 0, 0, false
			}
			continue
		}
		if fit == 0 || t.Before(first) {
			first = t
		}
		if fit == 0 || t.After(last) {
			last = t
		}
		if fit > 0 && t.Before(prev) {
			back++
		}
		prev = t
		fit++
	}
	return fit, last.Sub(first), back, true
}

// checkUnit refuses a generic file without a stated unit whose values all look like mmol/L,
// rather than skipping every row as implausibly low mg/dL.
func (p *parser) checkUnit() error {
	if p.res.Unit != "" {
		return nil
	}
	p.res.Unit = MgdL
	if p.unitless.small > 0 && p.unitless.large == 0 {
		return errors.New("glucose column names no unit and every value is below 35, as in mmol/L; state the unit")
	}
	return nil
}

// value converts one glucose field and records the reading or the reason it was skipped.
func (p *parser) value(line int, id string, t time.Time, g string, low, high float64) {
	r := Reading{Subject: id, Time: t}
	switch strings.ToLower(g) {
	case "":
		p.reject(line, "empty glucose")
		return
	case "low", "lo":
		r.MgdL, r.Marker = low, BelowRange
	case "high", "hi":
		r.MgdL, r.Marker = high, AboveRange
	default:
		if p.decimalComma {
			g = strings.Replace(g, ",", ".", 1)
		}
		v, err := strconv.ParseFloat(g, 64)
		if err != nil {
			p.reject(line, "glucose %q is not a number", g)
			return
		}
		switch {
		case p.res.Unit == MmolL:
			v *= iomt.MgdLPerMmolL
		case p.res.Unit == "" && v < 35:
			p.unitless.small++
		case p.res.Unit == "":
			p.unitless.large++
		}
		// NaN fails both comparisons, so it lands here too.
		if !(v >= minPlausible && v <= maxPlausible) || math.IsInf(v, 0) {
			p.reject(line, "glucose %s %s is outside %d–%d mg/dL", g, p.unitName(), minPlausible, maxPlausible)
			return
		}
		r.MgdL = v
	}
	if r.Marker != Measured {
		p.res.Substituted++
	}
	p.res.Readings = append(p.res.Readings, r)
	if r.Time.After(p.last[id]) {
		p.last[id] = r.Time
	}
}

func (p *parser) unitName() Unit {
	if p.res.Unit == "" {
		return MgdL
	}
	return p.res.Unit
}

var (
	genericLayouts = []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02T15:04", "2006/01/02 15:04:05", "2006/01/02 15:04"}
	dexcomLayouts  = []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04"}
	libreLayouts   = []string{"01-02-2006 15:04", "02-01-2006 15:04", "2006-01-02 15:04", "01/02/2006 15:04", "02/01/2006 15:04", "02.01.2006 15:04",
		"01-02-2006 15:04:05", "02-01-2006 15:04:05", "2006-01-02 15:04:05", "01/02/2006 03:04 PM", "01-02-2006 03:04 PM"}
)

func errNoZone(ts string) error {
	return fmt.Errorf("timestamp %q: %w", ts, ErrNoZone)
}

// parseTime reads an RFC 3339 instant, or a wall-clock time in loc (wall reports which).
func parseTime(s string, loc *time.Location, layouts []string) (t time.Time, wall bool, err error) {
	for _, l := range []string{time.RFC3339Nano, "2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05Z0700"} {
		if t, err := time.Parse(l, s); err == nil {
			return t, false, plausibleTime(s, t)
		}
	}
	for _, l := range layouts {
		if _, err := time.Parse(l, s); err == nil {
			if loc == nil {
				return time.Time{}, true, errNoZone(s)
			}
			t, _ := time.ParseInLocation(l, s, loc)
			return t, true, plausibleTime(s, t)
		}
	}
	return time.Time{}, false, fmt.Errorf("timestamp %q is not RFC 3339 nor YYYY-MM-DD hh:mm[:ss]", s)
}

// plausibleTime refuses dates no CGM can have written (a reset device clock, a typo): they would
// stretch a report over centuries.
func plausibleTime(s string, t time.Time) error {
	if y := t.Year(); y < 1990 || y > 2200 {
		return fmt.Errorf("timestamp %q is outside 1990–2200", s)
	}
	return nil
}

// laterOccurrence handles the hour that repeats when clocks go back: Go reads such a wall-clock
// time at its first occurrence. Exports list readings in time order, so a wall-clock time that
// would step back before the subject's previous reading, and that also names a later instant,
// is that later instant.
func (p *parser) laterOccurrence(id string, t time.Time) time.Time {
	last, ok := p.last[id]
	if !ok || !t.Before(last) {
		return t
	}
	wall := t.Format("2006-01-02 15:04:05")
	for _, d := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour} {
		if alt := t.Add(d); alt.Format("2006-01-02 15:04:05") == wall && !alt.Before(last) {
			return alt
		}
	}
	return t
}
