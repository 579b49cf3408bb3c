package fhir

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// dateRange is the span a (possibly partial) FHIR date stands for: [lo, hi).
type dateRange struct{ lo, hi time.Time }

var datePattern = regexp.MustCompile(`^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$`)

// parseDate reads a FHIR date/dateTime of any precision. A time without a zone is taken as
// UTC (iomt's time base).
func parseDate(v string) (dateRange, error) {
	m := datePattern.FindStringSubmatch(v)
	if m == nil {
		return dateRange{}, fmt.Errorf("%q is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.sss]][Z|±hh:mm])", v)
	}
	num := func(s string, def int) int {
		if s == "" {
			return def
		}
		n, _ := strconv.Atoi(s)
		return n
	}
	loc := time.UTC
	if z := m[8]; z != "" && z != "Z" {
		t, err := time.Parse("-07:00", z)
		if err != nil {
			return dateRange{}, fmt.Errorf("%q: bad zone offset", v)
		}
		loc = t.Location()
	}
	y, mo, d := num(m[1], 0), num(m[2], 1), num(m[3], 1)
	hh, mm, ss := num(m[4], 0), num(m[5], 0), num(m[6], 0)
	ns := 0
	if m[7] != "" {
		frac := (m[7][1:] + "000000000")[:9]
		ns, _ = strconv.Atoi(frac)
	}
	if mo < 1 || mo > 12 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60 {
		return dateRange{}, fmt.Errorf("%q is out of range", v)
	}
	lo := time.Date(y, time.Month(mo), d, hh, mm, ss, ns, loc)
	if lo.Day() != d {
		return dateRange{}, fmt.Errorf("%q is not a calendar date", v)
	}
	var hi time.Time
	switch {
	case m[2] == "":
		hi = lo.AddDate(1, 0, 0)
	case m[3] == "":
		hi = lo.AddDate(0, 1, 0)
	case m[4] == "":
		hi = lo.AddDate(0, 0, 1)
	case m[6] == "":
		hi = lo.Add(time.Minute)
	case m[7] == "":
		hi = lo.Add(time.Second)
	default:
		hi = lo.Add(time.Millisecond) // iomt's precision
	}
	return dateRange{lo.UTC(), hi.UTC()}, nil
}

// datePred is one date parameter: prefix and range.
type datePred struct {
	prefix string
	r      dateRange
}

// match applies FHIR's prefix semantics to a point in time (an Observation's effective time).
func (p datePred) match(t time.Time) bool {
	switch p.prefix {
	case "eq":
		return !t.Before(p.r.lo) && t.Before(p.r.hi)
	case "ne":
		return t.Before(p.r.lo) || !t.Before(p.r.hi)
	case "ge":
		return !t.Before(p.r.lo)
	case "gt", "sa":
		return !t.Before(p.r.hi)
	case "le":
		return t.Before(p.r.hi)
	case "lt", "eb":
		return t.Before(p.r.lo)
	}
	return false
}

func parseDatePred(name, v string) (datePred, error) {
	p := datePred{prefix: "eq"}
	if len(v) >= 2 && v[0] >= 'a' && v[0] <= 'z' {
		p.prefix, v = v[:2], v[2:]
		switch p.prefix {
		case "eq", "ne", "ge", "gt", "le", "lt", "sa", "eb":
		case "ap":
			return p, errorf(http.StatusBadRequest, "not-supported", "%s: prefix ap (approximately) is not supported", name)
		default:
			return p, errorf(http.StatusBadRequest, "value", "%s: unknown prefix %q", name, p.prefix)
		}
	}
	r, err := parseDate(v)
	if err != nil {
		return p, errorf(http.StatusBadRequest, "value", "%s: %v", name, err)
	}
	p.r = r
	return p, nil
}

// window narrows [from, to) to what the predicates allow, for the store query.
func window(preds []datePred) (from, to time.Time) {
	for _, p := range preds {
		lo, hi := time.Time{}, time.Time{}
		switch p.prefix {
		case "eq":
			lo, hi = p.r.lo, p.r.hi
		case "ge":
			lo = p.r.lo
		case "gt", "sa":
			lo = p.r.hi
		case "le":
			hi = p.r.hi
		case "lt", "eb":
			hi = p.r.lo
		}
		if !lo.IsZero() && (from.IsZero() || lo.After(from)) {
			from = lo
		}
		if !hi.IsZero() && (to.IsZero() || hi.Before(to)) {
			to = hi
		}
	}
	return from, to
}

// searchParams is a parsed, checked search request.
type searchParams struct {
	raw      map[string][]string // the parameters used: what the search applies, and the self link
	count    int
	offset   int
	sortDesc bool
	summary  bool // _summary=count
}

// paramSpec says which parameters a resource type takes.
type paramSpec struct {
	params map[string]bool // name (with allowed modifier, e.g. "subject:Patient") → ok
	sorts  map[string]bool // _sort values
}

// Result parameters every search takes; _format and _pretty change only the rendering.
var commonParams = map[string]bool{"_count": true, "_offset": true, "_sort": true, "_summary": true, "_total": true, "_format": true, "_pretty": true, "_id": true}

// checkParams refuses parameters iomt does not support (400), so a client never mistakes an
// unfiltered result for a filtered one. With "Prefer: handling=lenient" they are ignored
// instead and left out of the self link, as the FHIR search spec describes.
func (s *server) checkParams(r *http.Request, typ string, q map[string][]string, spec paramSpec) (searchParams, error) {
	lenient := strings.Contains(r.Header.Get("Prefer"), "handling=lenient")
	sp := searchParams{raw: make(map[string][]string), count: s.DefaultCount}
	for name, vals := range q {
		if !commonParams[name] && !spec.params[name] {
			if lenient {
				continue
			}
			return sp, errorf(http.StatusBadRequest, "not-supported", "search parameter %q is not supported on %s (see %s/metadata); send Prefer: handling=lenient to ignore it", name, typ, s.Prefix)
		}
		var kept []string
		for _, v := range vals {
			if v != "" {
				kept = append(kept, v)
			}
		}
		if len(kept) == 0 {
			continue
		}
		switch name {
		case "_format", "_pretty":
			continue
		case "_count":
			n, err := strconv.Atoi(kept[0])
			if err != nil || n < 0 {
				return sp, errorf(http.StatusBadRequest, "value", "_count must be a whole number, got %q", kept[0])
			}
			sp.count = min(n, s.MaxCount)
		case "_offset":
			n, err := strconv.Atoi(kept[0])
			if err != nil || n < 0 {
				return sp, errorf(http.StatusBadRequest, "value", "_offset must be a whole number, got %q", kept[0])
			}
			sp.offset = n
			continue // not part of the self link's base; links set it
		case "_sort":
			v := kept[0]
			if !spec.sorts[strings.TrimPrefix(v, "-")] {
				return sp, errorf(http.StatusBadRequest, "not-supported", "_sort=%s is not supported on %s", v, typ)
			}
			sp.sortDesc = strings.HasPrefix(v, "-")
		case "_summary":
			switch kept[0] {
			case "count":
				sp.summary = true
			case "false":
			default:
				return sp, errorf(http.StatusBadRequest, "not-supported", "_summary=%s is not supported (count and false are)", kept[0])
			}
		case "_total":
			// The total is always given: it is computed for paging anyway.
		}
		sp.raw[name] = kept
	}
	return sp, nil
}
