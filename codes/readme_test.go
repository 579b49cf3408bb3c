package codes_test

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/iomt/iomt/codes"
)

var update = flag.Bool("update", false, "rewrite the generated tables in README.md")

const (
	beginTables = "<!-- BEGIN GENERATED TABLES: go test ./codes -run TestREADME -update -->\n"
	endTables   = "<!-- END GENERATED TABLES -->\n"
)

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func cell(s string) string {
	if s == "" {
		return "—"
	}
	return "`" + s + "`"
}

func cells(ss []string) string {
	if len(ss) == 0 {
		return "—"
	}
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = "`" + s + "`"
	}
	return strings.Join(q, ", ")
}

// markdown renders the catalog as README.md shows it.
func markdown(c *codes.Catalog) string {
	var b strings.Builder
	b.WriteString(beginTables)
	b.WriteString("\n### Codes\n\n")
	b.WriteString("| ID | Display | LOINC | MDC reference id | MDC code | Aliases | Unit | Kind | Range | Scale | FHIR vital signs |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, code := range c.All() {
		mdcNum := "—"
		if code.MDCCode != 0 {
			mdcNum = fmt.Sprintf("%d (%d.%d)", code.MDCCode, code.MDCCode>>16, code.MDCCode&0xFFFF)
		}
		rng, scale := "—", "—"
		if code.Kind != codes.Panel {
			rng = num(code.Min) + " .. " + num(code.Max)
		}
		if code.Scale != 0 {
			scale = num(code.Scale)
		}
		vs := "—"
		switch {
		case code.FHIRVitalSigns && code.VitalSignsLOINC == code.LOINC:
			vs = "yes"
		case code.FHIRVitalSigns:
			vs = "as `" + code.VitalSignsLOINC + "`"
		}
		if len(code.Components) > 0 {
			vs += "; components " + cells(code.Components)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			cell(code.ID), code.Display, cell(code.LOINC), cell(code.MDC), mdcNum, cells(code.Aliases),
			cell(code.Unit), code.Kind, rng, scale, vs)
	}

	b.WriteString("\n### Further MDC terms filed under a code\n\n")
	b.WriteString("| ID | MDC reference id | MDC code |\n|---|---|---|\n")
	for _, code := range c.All() {
		for _, alt := range code.AltMDC {
			fmt.Fprintf(&b, "| %s | `%s` | %d (%d.%d) |\n", cell(code.ID), alt.RefID, alt.Code, alt.Code>>16, alt.Code&0xFFFF)
		}
	}

	b.WriteString("\n### Units Convert accepts\n\n")
	b.WriteString("| ID | Canonical | Also accepted |\n|---|---|---|\n")
	for _, code := range c.All() {
		units := c.Units(code.ID)
		if len(units) == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", cell(code.ID), cell(units[0]), cells(units[1:]))
	}
	b.WriteString("\n")
	b.WriteString(endTables)
	return b.String()
}

// README.md's tables are generated from the catalog, so they cannot drift from it.
func TestREADME(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i, j := strings.Index(doc, beginTables), strings.Index(doc, endTables)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the markers %q ... %q", beginTables, endTables)
	}
	want := doc[:i] + markdown(codes.New()) + doc[j+len(endTables):]
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile("README.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Error("README.md's tables are out of date: go test ./codes -run TestREADME -update")
}
