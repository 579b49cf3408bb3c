// Package agpreport renders the ambulatory glucose profile (AGP) report, the one-page CGM
// summary of the international consensus (Battelino et al. 2019; the IDC AGP layout):
// glucose statistics and targets, the time-in-ranges bar, the AGP percentile chart and the
// daily glucose profiles. The page is self-contained HTML with inline SVG, so it opens offline
// and prints one subject per page.
package agpreport

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"

	"github.com/iomt/iomt/analytics/glucose"
)

// Subject is one patient's data for the report.
type Subject struct {
	ID      string
	Summary glucose.Summary
	AGP     []glucose.AGPPoint
	Days    []glucose.Day
}

// Page is the whole report: one section per subject.
type Page struct {
	Source    string         // file or query the data came from
	Location  *time.Location // the patients' zone: time of day on every chart
	Generated time.Time
	Subjects  []Subject
}

// Colours of the consensus time-in-ranges bar and of the AGP bands.
const (
	colVeryHigh = "#e8692b"
	colHigh     = "#fbc02d"
	colTarget   = "#2e9d4c"
	colLow      = "#e53935"
	colVeryLow  = "#8e1a1a"
	colOuter    = "#c7d3e6" // 5–95 %
	colInner    = "#6f8fc4" // 25–75 %
	colMedian   = "#17365d"
)

// Render writes the report page.
func Render(w io.Writer, p Page) error {
	if p.Location == nil {
		p.Location = time.UTC
	}
	view := pageView{Source: p.Source, Zone: p.Location.String(), Generated: p.Generated.In(p.Location).Format("Jan 2, 2006 15:04 MST")}
	for _, s := range p.Subjects {
		view.Subjects = append(view.Subjects, subjectView(s, p.Location))
	}
	if err := pageTmpl.Execute(w, view); err != nil {
		return fmt.Errorf("agpreport: %w", err)
	}
	return nil
}

type pageView struct {
	Source, Zone, Generated string
	Subjects                []subjView
}

type rangeRow struct {
	Label, Target, Pct, Time, Colour string
}

type subjView struct {
	ID, Period, Days, Active, Mean, GMI, CV, SD, MAGE, CONGA, MODD, Readings string
	DailyNote, DataNote                                                      string
	CVOK, ActiveOK                                                           bool
	Ranges                                                                   []rangeRow
	TIR, AGP                                                                 template.HTML
	Daily                                                                    []template.HTML
}

func f(x float64, prec int) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "–"
	}
	return fmt.Sprintf("%.*f", prec, x)
}

// The consensus's data sufficiency (Battelino et al. 2019): metrics stand for a patient's usual
// glucose from 14 days of CGM data with the sensor active at least 70 % of the time.
const (
	MinDays      = 14
	MinActivePct = 70
)

// Shortfall lists how the readings fall short of the consensus's data sufficiency ("12.7
// days", "CGM active 58.9%"); empty when they meet it. The span counts the last reading's own
// sampling interval, so 14 days of 5-minute readings (00:00 on day 1 to 23:55 on day 14) count
// as 14 days; an hour's slack absorbs a clock change.
func Shortfall(m glucose.Summary) []string {
	if m.Readings == 0 {
		return []string{"no readings"}
	}
	days := m.Days
	if step := m.SampleStep; step > 0 && !math.IsInf(step, 0) {
		days += step / (24 * 60)
	}
	var short []string
	if days < MinDays-1.0/24 {
		unit := " days"
		if trim(days) == "1" {
			unit = " day"
		}
		short = append(short, "readings over "+trim(days)+unit) // the header counts calendar days
	}
	switch {
	case math.IsNaN(m.ActivePct): // one reading says nothing of wear time
		short = append(short, "CGM active time unknown")
	case m.ActivePct < MinActivePct:
		short = append(short, "CGM active "+trim(m.ActivePct)+"%")
	}
	return short
}

// DataNote is the caution the report shows when the readings fall short of the consensus's
// data sufficiency, or "" when they meet it.
func DataNote(m glucose.Summary) string {
	short := Shortfall(m)
	if len(short) == 0 {
		return ""
	}
	return fmt.Sprintf("Too little data: %s (the consensus asks for at least %d days with the CGM active at least %d%% of the time); GMI and the other metrics may not reflect usual glucose.",
		strings.Join(short, ", "), MinDays, MinActivePct)
}

// trim prints x with one decimal, without a trailing ".0".
func trim(x float64) string {
	return strings.TrimSuffix(fmt.Sprintf("%.1f", x), ".0")
}

// dayTime renders a share of the day as hours and minutes, as the AGP report does.
func dayTime(pct float64) string {
	m := int(math.Round(pct / 100 * 1440))
	switch {
	case m >= 60 && m%60 != 0:
		return fmt.Sprintf("%dh %dmin", m/60, m%60)
	case m >= 60:
		return fmt.Sprintf("%dh", m/60)
	}
	return fmt.Sprintf("%dmin", m)
}

func subjectView(s Subject, loc *time.Location) subjView {
	m := s.Summary
	v := subjView{ID: s.ID, Mean: f(m.Mean, 0), GMI: f(m.GMI, 1), CV: f(m.CV, 1), SD: f(m.SD, 1),
		MAGE: f(m.MAGE, 1), CONGA: f(m.CONGA, 1), MODD: f(m.MODD, 1), Active: f(m.ActivePct, 1),
		Readings: fmt.Sprint(m.Readings), CVOK: m.CV <= 36, ActiveOK: m.ActivePct >= MinActivePct, DataNote: DataNote(m)}
	if m.Readings > 0 {
		v.Period = m.Start.In(loc).Format("Jan 2, 2006") + " – " + m.End.In(loc).Format("Jan 2, 2006")
	}
	veryLow, low := m.Below54, m.Below70-m.Below54
	high, veryHigh := m.Above180-m.Above250, m.Above250
	v.Ranges = []rangeRow{
		{"Target Range 70–180 mg/dL", "Greater than 70% (16h 48min)", pctText(m.InRange), dayTime(m.InRange), colTarget},
		{"Below 70 mg/dL", "Less than 4% (58min)", pctText(m.Below70), dayTime(m.Below70), colLow},
		{"Below 54 mg/dL", "Less than 1% (14min)", pctText(m.Below54), dayTime(m.Below54), colVeryLow},
		{"Above 180 mg/dL", "Less than 25% (6h)", pctText(m.Above180), dayTime(m.Above180), colHigh},
		{"Above 250 mg/dL", "Less than 5% (1h 12min)", pctText(m.Above250), dayTime(m.Above250), colVeryHigh},
	}
	v.TIR = tirBar([5]float64{veryHigh, high, m.InRange, low, veryLow})
	v.AGP = agpChart(s.AGP)
	// The period's calendar days, as the report counts them, and daily profiles of the last 14 of
	// them, as the AGP report shows them; a day without data gets an empty panel so that it
	// shows as missing rather than vanishes.
	var shown []glucose.Day
	if n := len(s.Days); n > 0 {
		first, last := s.Days[0].Date, s.Days[n-1].Date
		span := int(math.Round(last.Sub(first).Hours()/24)) + 1
		v.Days = fmt.Sprint(span)
		from := last.AddDate(0, 0, -(dailyDays - 1))
		if from.Before(first) {
			from = first
		}
		next := from
		for _, d := range s.Days {
			if d.Date.Before(from) {
				continue
			}
			for ; next.Before(d.Date); next = next.AddDate(0, 0, 1) {
				shown = append(shown, glucose.Day{Date: next})
			}
			shown = append(shown, d)
			next = d.Date.AddDate(0, 0, 1)
		}
		if span > dailyDays {
			v.DailyNote = fmt.Sprintf("The last %d of the %d days are shown.", dailyDays, span)
		}
	}
	for _, d := range shown {
		v.Daily = append(v.Daily, dailyChart(d, loc))
	}
	return v
}

// svg is a small builder; every value written into it is a number or a fixed label, so the
// result is safe to mark as template.HTML.
type svg struct{ strings.Builder }

func (b *svg) f(format string, a ...any) { fmt.Fprintf(&b.Builder, format, a...) }

func (b *svg) html() template.HTML { return template.HTML(b.String()) }

// pctText is a whole percentage for the statistics table, "<1" for a small non-zero share.
func pctText(p float64) string {
	if p > 0 && p < 0.5 {
		return "<1"
	}
	return f(p, 0)
}

// pctLabel prints a percentage as the AGP report does: whole numbers, "<1" for small non-zero.
func pctLabel(p float64) string {
	if p > 0 && p < 0.5 {
		return "&lt;1%"
	}
	return fmt.Sprintf("%.0f%%", p)
}

// tirBar draws the stacked time-in-ranges bar, very high on top, with labels at the right.
func tirBar(p [5]float64) template.HTML {
	names := [5]string{"Very High", "High", "Target Range", "Low", "Very Low"}
	ranges := [5]string{"&gt;250 mg/dL", "181–250 mg/dL", "70–180 mg/dL", "54–69 mg/dL", "&lt;54 mg/dL"}
	cols := [5]string{colVeryHigh, colHigh, colTarget, colLow, colVeryLow}
	const W, H, top, barX, barW, barH = 360.0, 300.0, 12.0, 20.0, 46.0, 270.0
	var b svg
	b.f(`<svg viewBox="0 0 %g %g" width="%g" height="%g" role="img" aria-label="Time in ranges">`, W, H, W, H)
	// Small segments get a minimum height so that they stay visible, as on the printed report.
	const minSeg = 3.0
	var hs [5]float64
	total := 0.0
	for i, x := range p {
		if x > 0 {
			hs[i] = math.Max(minSeg, x/100*barH)
		}
		total += hs[i]
	}
	y := top
	labelY := [5]float64{}
	for i := range p {
		h := hs[i] * barH / math.Max(total, 1)
		if h > 0 {
			b.f(`<rect x="%g" y="%.2f" width="%g" height="%.2f" fill="%s"/>`, barX, y, barW, h, cols[i])
			b.f(`<line x1="%g" x2="%g" y1="%.2f" y2="%.2f" stroke="#fff" stroke-width="1.5"/>`, barX, barX+barW, y, y)
		}
		labelY[i] = y + h/2
		y += h
	}
	// Spread labels so they never overlap and stay within the bar's height: push down from
	// the top, then back up from the bottom.
	const gap = 24.0
	labelY[0] = math.Max(labelY[0], top+6)
	for i := 1; i < 5; i++ {
		labelY[i] = math.Max(labelY[i], labelY[i-1]+gap)
	}
	labelY[4] = math.Min(labelY[4], top+barH-6)
	for i := 3; i >= 0; i-- {
		labelY[i] = math.Min(labelY[i], labelY[i+1]-gap)
	}
	for i := range p {
		y := labelY[i]
		b.f(`<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#999" stroke-width="0.8"/>`, barX+barW+4, barX+barW+18, y, y)
		b.f(`<text x="%g" y="%.1f" class="lab"><tspan font-weight="600">%s</tspan> <tspan fill="#555">%s</tspan></text>`, barX+barW+22, y+4, names[i], ranges[i])
		b.f(`<text x="%g" y="%.1f" class="pct" text-anchor="end">%s</text>`, W-4, y+4, pctLabel(p[i]))
	}
	b.f(`</svg>`)
	return b.html()
}

// AGP chart geometry (mg/dL axis 0–350, the report's scale).
const (
	agpW, agpH             = 900.0, 330.0
	agpL, agpR, agpT, agpB = 54.0, 60.0, 14.0, 30.0
	yMax                   = 350.0
)

func agpX(minute float64) float64 { return agpL + minute/1440*(agpW-agpL-agpR) }
func agpY(mg float64) float64 {
	mg = math.Max(0, math.Min(yMax, mg))
	return agpT + (1-mg/yMax)*(agpH-agpT-agpB)
}

// closed extends the 15-minute AGP points across midnight so the bands reach both edges.
func closed(pts []glucose.AGPPoint) []glucose.AGPPoint {
	var ok []glucose.AGPPoint
	for _, p := range pts {
		if !math.IsNaN(p.P50) {
			ok = append(ok, p)
		}
	}
	if len(ok) == 0 {
		return nil
	}
	last := ok[len(ok)-1]
	first := ok[0]
	if first.Minute == 0 {
		end := first
		end.Minute = 1440
		ok = append(ok, end)
	} else {
		start := last
		start.Minute = 0
		ok = append([]glucose.AGPPoint{start}, ok...)
	}
	return ok
}

func band(b *svg, pts []glucose.AGPPoint, lo, hi func(glucose.AGPPoint) float64, fill string) {
	b.f(`<path fill="%s" stroke="none" d="`, fill)
	for i, p := range pts {
		cmd := "L"
		if i == 0 {
			cmd = "M"
		}
		b.f("%s%.1f,%.1f", cmd, agpX(float64(p.Minute)), agpY(hi(p)))
	}
	for i := len(pts) - 1; i >= 0; i-- {
		b.f("L%.1f,%.1f", agpX(float64(pts[i].Minute)), agpY(lo(pts[i])))
	}
	b.f(`Z"/>`)
}

func curve(b *svg, pts []glucose.AGPPoint, v func(glucose.AGPPoint) float64, stroke string, width float64, dash string) {
	b.f(`<path fill="none" stroke="%s" stroke-width="%g" stroke-linejoin="round"%s d="`, stroke, width, dash)
	for i, p := range pts {
		cmd := "L"
		if i == 0 {
			cmd = "M"
		}
		b.f("%s%.1f,%.1f", cmd, agpX(float64(p.Minute)), agpY(v(p)))
	}
	b.f(`"/>`)
}

var hourLabels = []string{"12am", "3am", "6am", "9am", "12pm", "3pm", "6pm", "9pm", "12am"}

// agpChart draws the percentile bands over a day, with the target range and the report's axis.
func agpChart(points []glucose.AGPPoint) template.HTML {
	var b svg
	b.f(`<svg viewBox="0 0 %g %g" width="100%%" role="img" aria-label="Ambulatory glucose profile">`, agpW, agpH)
	plotB := agpH - agpB
	b.f(`<rect x="%g" y="%g" width="%g" height="%g" fill="#fff" stroke="#bbb"/>`, agpL, agpT, agpW-agpL-agpR, plotB-agpT)
	for i, lab := range hourLabels {
		x := agpX(float64(i) * 180)
		b.f(`<line x1="%.1f" x2="%.1f" y1="%g" y2="%g" stroke="#e3e3e3"/>`, x, x, agpT, plotB)
		b.f(`<text x="%.1f" y="%g" text-anchor="middle" class="ax">%s</text>`, x, plotB+18, lab)
	}
	for _, g := range []float64{54, 70, 180, 250, 350} {
		y := agpY(g)
		stroke, w := "#ddd", 1.0
		if g == 70 || g == 180 {
			stroke, w = colTarget, 1.6
		}
		b.f(`<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="%g"/>`, agpL, agpW-agpR, y, y, stroke, w)
		b.f(`<text x="%g" y="%.1f" text-anchor="end" class="ax%s">%g</text>`, agpL-6, y+4, map[bool]string{true: " tgt"}[g == 70 || g == 180], g)
	}
	b.f(`<text x="12" y="%g" class="ax" transform="rotate(-90 12 %g)" text-anchor="middle">mg/dL</text>`, (agpT+plotB)/2, (agpT+plotB)/2)
	pts := closed(points)
	if len(pts) == 0 {
		b.f(`<text x="%g" y="%g" text-anchor="middle" class="lab">not enough data</text></svg>`, agpW/2, agpH/2)
		return b.html()
	}
	p5 := func(p glucose.AGPPoint) float64 { return p.P5 }
	p25 := func(p glucose.AGPPoint) float64 { return p.P25 }
	p50 := func(p glucose.AGPPoint) float64 { return p.P50 }
	p75 := func(p glucose.AGPPoint) float64 { return p.P75 }
	p95 := func(p glucose.AGPPoint) float64 { return p.P95 }
	band(&b, pts, p5, p95, colOuter)
	band(&b, pts, p25, p75, colInner)
	curve(&b, pts, p5, "#8fa6cc", 1, ` stroke-dasharray="4 3"`)
	curve(&b, pts, p95, "#8fa6cc", 1, ` stroke-dasharray="4 3"`)
	curve(&b, pts, p50, colMedian, 2.6, "")
	// Redraw the target lines over the bands, as the report shows the range through the profile.
	for _, g := range []float64{70, 180} {
		y := agpY(g)
		b.f(`<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="1.2" opacity="0.8"/>`, agpL, agpW-agpR, y, y, colTarget)
	}
	// Percentile labels at the right edge, spread apart when the curves bunch up.
	end := pts[len(pts)-1]
	labs := []struct {
		name string
		v    float64
	}{{"95%", end.P95}, {"75%", end.P75}, {"50%", end.P50}, {"25%", end.P25}, {"5%", end.P5}}
	ys := make([]float64, len(labs))
	for i, l := range labs {
		ys[i] = agpY(l.v)
		if i > 0 {
			ys[i] = math.Max(ys[i], ys[i-1]+13)
		}
	}
	for i, l := range labs {
		b.f(`<text x="%g" y="%.1f" class="ax pl">%s</text>`, agpW-agpR+6, ys[i]+4, l.name)
	}
	b.f(`</svg>`)
	return b.html()
}

// dailyDays is how many daily profiles the report shows, the last ones of the period.
const dailyDays = 14

// Daily profile geometry.
const (
	dW, dH, dT, dB = 130.0, 92.0, 16.0, 12.0
	dMax           = 350.0
)

func dY(mg float64) float64 {
	mg = math.Max(0, math.Min(dMax, mg))
	return dT + (1-mg/dMax)*(dH-dT-dB)
}

// dailyChart draws one midnight-to-midnight day: the trace, the target range, and the time
// above 180 and below 70 filled as on the report.
func dailyChart(d glucose.Day, loc *time.Location) template.HTML {
	var b svg
	id := d.Date.Format("20060102")
	b.f(`<svg viewBox="0 0 %g %g" width="100%%" role="img">`, dW, dH)
	b.f(`<text x="3" y="11" class="dl"><tspan font-weight="600">%s</tspan> %s</text>`, d.Date.Format("Mon"), d.Date.Format("Jan 2"))
	b.f(`<rect x="0" y="%g" width="%g" height="%g" fill="#fff" stroke="#bbb"/>`, dT, dW, dH-dT-dB)
	b.f(`<line x1="%g" x2="%g" y1="%g" y2="%g" stroke="#e3e3e3"/>`, dW/2, dW/2, dT, dH-dB)
	b.f(`<text x="%g" y="%g" text-anchor="middle" class="dax">12pm</text>`, dW/2, dH-2)
	y70, y180 := dY(70), dY(180)
	b.f(`<clipPath id="hi%s"><rect x="0" y="0" width="%g" height="%.1f"/></clipPath>`, id, dW, y180)
	b.f(`<clipPath id="lo%s"><rect x="0" y="%.1f" width="%g" height="%g"/></clipPath>`, id, y70, dW, dH)
	// Segments split at gaps over 45 minutes: no line is drawn across missing data.
	var segs [][]glucose.Reading
	for i, r := range d.Readings {
		if i == 0 || r.Time.Sub(d.Readings[i-1].Time) > glucose.DefaultInterGap {
			segs = append(segs, nil)
		}
		segs[len(segs)-1] = append(segs[len(segs)-1], r)
	}
	x := func(t time.Time) float64 {
		lt := t.In(loc)
		mid := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, loc)
		return t.Sub(mid).Minutes() / 1440 * dW
	}
	if len(d.Readings) == 0 {
		b.f(`<text x="%g" y="%g" text-anchor="middle" class="dax">no data</text>`, dW/2, (dT+dH-dB)/2+3)
	}
	for _, s := range segs {
		var pts strings.Builder
		for _, r := range s {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(r.Time), dY(r.MgdL))
		}
		x0, x1 := x(s[0].Time), x(s[len(s)-1].Time)
		b.f(`<polygon points="%.1f,%.1f %s%.1f,%.1f" fill="%s" clip-path="url(#hi%s)"/>`, x0, y180, pts.String(), x1, y180, colHigh, id)
		b.f(`<polygon points="%.1f,%.1f %s%.1f,%.1f" fill="%s" clip-path="url(#lo%s)"/>`, x0, y70, pts.String(), x1, y70, colLow, id)
		b.f(`<polyline points="%s" fill="none" stroke="#222" stroke-width="0.9"/>`, pts.String())
	}
	b.f(`<line x1="0" x2="%g" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="0.9"/>`, dW, y70, y70, colTarget)
	b.f(`<line x1="0" x2="%g" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="0.9"/>`, dW, y180, y180, colTarget)
	b.f(`</svg>`)
	return b.html()
}

var pageTmpl = template.Must(template.New("agp").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>AGP Report: Continuous Glucose Monitoring</title>
<style>
@page { size: letter portrait; margin: 10mm; }
* { box-sizing: border-box; }
body { font-family: "Helvetica Neue", Arial, sans-serif; color: #1d1d1d; margin: 0; background: #fff; font-size: 12px; }
.subject { width: 980px; margin: 0 auto; padding: 14px 10px 18px; page-break-after: always; break-after: page; }
.subject:last-child { page-break-after: auto; break-after: auto; }
header { display: flex; justify-content: space-between; align-items: flex-end; border-bottom: 3px solid #17365d; padding-bottom: 6px; }
header h1 { font-size: 21px; margin: 0; color: #17365d; letter-spacing: .2px; }
header h1 small { font-weight: 400; color: #444; }
header .who { text-align: right; font-size: 13px; }
header .who b { font-size: 15px; }
.row { display: flex; gap: 14px; margin-top: 12px; }
.box { border: 1px solid #9aa8bd; border-radius: 3px; flex: 1; }
.box h2 { margin: 0; font-size: 12px; letter-spacing: .8px; text-transform: uppercase; background: #17365d; color: #fff; padding: 5px 9px; }
.box .in { padding: 8px 10px; }
.kv { display: grid; grid-template-columns: auto 1fr; gap: 2px 10px; margin-bottom: 8px; }
.kv b { text-align: right; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 4px; border-bottom: 1px solid #e1e5eb; font-size: 11.5px; }
th { font-size: 10.5px; text-transform: uppercase; color: #444; letter-spacing: .4px; }
td.sw { width: 10px; padding: 0; }
td.sw i { display: inline-block; width: 9px; height: 9px; border-radius: 2px; }
.note { color: #555; font-size: 10.5px; margin: 5px 0 0; }
.stats { display: grid; grid-template-columns: 1fr auto; gap: 5px 10px; margin-top: 8px; align-items: baseline; }
.stats .v { font-size: 17px; font-weight: 700; text-align: right; }
.stats .v small { font-size: 11px; font-weight: 400; }
.warn { color: #b71c1c; }
.lab { font-size: 12px; } .pct { font-size: 15px; font-weight: 700; }
.ax { font-size: 11px; fill: #333; } .ax.tgt { fill: #2e9d4c; font-weight: 700; } .ax.pl { font-weight: 700; fill: #17365d; }
.dl { font-size: 9.5px; } .dax { font-size: 8px; fill: #555; }
.daily { display: grid; grid-template-columns: repeat(7, 1fr); gap: 6px 6px; }
.legend { display: flex; gap: 16px; font-size: 11px; color: #333; margin: 2px 0 6px; }
.legend i { display: inline-block; width: 18px; height: 10px; vertical-align: -1px; margin-right: 4px; }
footer { color: #666; font-size: 10px; margin-top: 10px; }
/* The page is laid out 980 px wide; scale it to the printable width of letter or A4. */
@media print { .subject { zoom: 0.74; padding: 0; } }
</style></head><body>
{{range .Subjects}}<section class="subject">
<header>
 <h1>AGP Report: <small>Continuous Glucose Monitoring</small></h1>
 <div class="who">Patient <b>{{.ID}}</b><br>{{.Period}}</div>
</header>
<div class="row">
 <div class="box" style="flex:1.25">
  <h2>Glucose statistics and targets</h2>
  <div class="in">
   <div class="kv"><span>{{.Period}}</span><b>{{.Days}} days</b>
   <span>% Time CGM is active</span><b{{if not .ActiveOK}} class="warn"{{end}}>{{.Active}}%</b></div>
   <table>
    <tr><th></th><th>Ranges and targets for type 1 or type 2 diabetes</th><th>Target: % of readings (time/day)</th><th>Patient</th></tr>
    {{range .Ranges}}<tr><td class="sw"><i style="background:{{.Colour}}"></i></td><td>{{.Label}}</td><td>{{.Target}}</td><td><b>{{.Pct}}%</b> ({{.Time}})</td></tr>
    {{end}}
   </table>
   {{if .DataNote}}<p class="note warn">{{.DataNote}}</p>
   {{end}}<p class="note">Each 5% increase in time in range (70–180 mg/dL) is clinically beneficial. Targets: Battelino et al., Diabetes Care 2019.</p>
   <div class="stats">
    <span>Average glucose</span><span class="v">{{.Mean}} <small>mg/dL</small></span>
    <span>Glucose management indicator (GMI)</span><span class="v">{{.GMI}}<small>%</small></span>
    <span>Glucose variability<br><small class="note">coefficient of variation (%CV); target ≤36%</small></span><span class="v{{if not .CVOK}} warn{{end}}">{{.CV}}<small>%</small></span>
   </div>
  </div>
 </div>
 <div class="box">
  <h2>Time in ranges</h2>
  <div class="in">{{.TIR}}</div>
 </div>
</div>
<div class="row"><div class="box">
 <h2>Ambulatory glucose profile (AGP)</h2>
 <div class="in">
  <p class="note" style="margin-top:0">AGP is a summary of glucose values from the report period, with the median (50%) and other percentiles shown as if they occurred in a single day.</p>
  <div class="legend"><span><i style="background:#c7d3e6"></i>5–95%</span><span><i style="background:#6f8fc4"></i>25–75%</span><span><i style="background:#17365d;height:3px;vertical-align:3px"></i>median</span><span><i style="background:#2e9d4c;height:2px;vertical-align:3px"></i>target range 70–180 mg/dL</span></div>
  {{.AGP}}
  <p class="note">SD {{.SD}} mg/dL · MAGE {{.MAGE}} mg/dL · CONGA {{.CONGA}} mg/dL · MODD {{.MODD}} mg/dL · {{.Readings}} readings</p>
 </div>
</div></div>
<div class="row"><div class="box">
 <h2>Daily glucose profiles</h2>
 <div class="in">
  <p class="note" style="margin-top:0">Each daily profile represents a midnight-to-midnight period; above 180 mg/dL is shaded yellow, below 70 mg/dL red. {{.DailyNote}}</p>
  <div class="daily">{{range .Daily}}<div>{{.}}</div>{{end}}</div>
 </div>
</div></div>
<footer>Source: {{$.Source}} · times in {{$.Zone}} · generated {{$.Generated}} by iomt · glucose in mg/dL</footer>
</section>
{{end}}</body></html>
`))
