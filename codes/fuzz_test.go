package codes_test

import (
	"math"
	"strings"
	"testing"

	"github.com/iomt/iomt/codes"
)

// Names and units come straight from devices: whatever they are, Lookup and Convert must not
// panic, and what Lookup finds must be consistent with the catalog.
func FuzzLookupConvert(f *testing.F) {
	for _, s := range []string{"hr", "HR", "8867-4", "147842", "MDC_ECG_HEART_RATE", "mdc_temp_oral", "", "ｈｒ", strings.Repeat("z", 70)} {
		f.Add(s, "beats/min", 72.0)
	}
	f.Add("temp", "degF", 98.6)
	f.Add("spo2", "/", 0.97)
	c := codes.New()
	f.Fuzz(func(t *testing.T, name, unit string, v float64) {
		code, ok := c.Lookup(name)
		if !ok {
			return
		}
		if byID, ok := c.ByID(code.ID); !ok || byID.ID != code.ID {
			t.Fatalf("Lookup(%q) found %q, which ByID does not know", name, code.ID)
		}
		if again, ok := c.Lookup(strings.ToUpper(name)); !ok || again.ID != code.ID {
			t.Fatalf("Lookup(%q) = %q but Lookup(upper) = %q, %v", name, code.ID, again.ID, ok)
		}
		got, err := c.Convert(code, v, unit)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "codes: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		if (unit == "" || unit == code.Unit) && got != v && !math.IsNaN(v) {
			t.Fatalf("Convert(%v, canonical %q) = %v", v, unit, got)
		}
	})
}
