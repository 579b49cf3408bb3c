package codes

import (
	"slices"

	"github.com/iomt/iomt"
)

// Conversion constants, each stated once.
const (
	// pascalPerMmHg is the conventional millimetre of mercury (13.5951 g/cm³ × 9.80665 m/s² ×
	// 1 mm), so 1 kPa = 7.50062 mm[Hg]. UCUM rounds it to 133.322 Pa; the 3 ppm are far below
	// any cuff's resolution.
	pascalPerMmHg = 133.322387415
	// kgPerPound is the international avoirdupois pound, exact by definition (UCUM [lb_av]).
	kgPerPound = 0.45359237
	// cmPerInch is the international inch, exact by definition (UCUM [in_i]).
	cmPerInch = 2.54
	// kelvinAtZeroCelsius is exact by definition.
	kelvinAtZeroCelsius = 273.15
)

// linear converts to the canonical unit: canonical = (v + add) × mul.
type linear struct{ add, mul float64 }

func (l linear) apply(v float64) float64 { return (v + l.add) * l.mul }

func times(f float64) linear { return linear{mul: f} }

// unitSet names the family of units a code accepts. Families are per quantity, not per
// canonical unit, because a conversion may depend on the substance (glucose's molar mass) or
// on what a ratio means (SpO2 and battery are percentages, pleth is not).
type unitSet int

const (
	noUnits unitSet = iota // a panel: no value at all
	heartRateUnits
	respRateUnits
	saturationUnits
	batteryUnits
	temperatureUnits
	pressureUnits
	glucoseUnits
	massUnits
	lengthUnits
	bmiUnits
	stepUnits
	voltageUnits
	arbitraryUnits // pleth: dimensionless, device-relative amplitude
	eventUnits
	flowUnits
	scoreUnits
	speedUnits
	countUnits
	durationUnits // time intervals such as HRV's SDNN, in ms
)

// table returns a fresh map of the units this family accepts besides the canonical one, which
// Convert handles before consulting it. Keys are case-sensitive, as UCUM and SenML are ("C" is
// coulomb, not Celsius, so it is not accepted).
func (s unitSet) table() map[string]linear {
	same := linear{mul: 1}
	perMin := map[string]linear{
		"/min": same, "1/min": same, // UCUM, SenML
		"Hz": times(60), "1/s": times(60), "/s": times(60), // SenML event rates
	}
	ratioToPercent := map[string]linear{
		"%": same, "MDC_DIM_PERCENT": same,
		// SenML's preferred ratio unit and UCUM's unity: 0.97 means 97 %.
		"/": times(100), "1": times(100), "/1": times(100),
	}
	switch s {
	case heartRateUnits:
		for _, u := range []string{"beat/min", "beats/min", "{beat}/min", "{beats}/min", "bpm", "MDC_DIM_BEAT_PER_MIN"} {
			perMin[u] = same
		}
		return perMin
	case respRateUnits:
		for _, u := range []string{"breaths/min", "breath/min", "{breath}/min", "{breaths}/min", "MDC_DIM_RESP_PER_MIN"} {
			perMin[u] = same
		}
		return perMin
	case saturationUnits:
		return ratioToPercent
	case batteryUnits:
		ratioToPercent["%EL"] = same // SenML: remaining battery energy level in percent
		return ratioToPercent
	case temperatureUnits:
		fahrenheit := linear{add: -32, mul: 5.0 / 9}
		return map[string]linear{
			"Cel": same, "degC": same, "°C": same, "MDC_DIM_DEGC": same,
			"K":      {add: -kelvinAtZeroCelsius, mul: 1},
			"[degF]": fahrenheit, "degF": fahrenheit, "°F": fahrenheit, "MDC_DIM_FAHR": fahrenheit,
		}
	case pressureUnits:
		kPa := times(1000 / pascalPerMmHg)
		return map[string]linear{
			"mm[Hg]": same, "mmHg": same, "MDC_DIM_MMHG": same,
			"kPa": kPa, "MDC_DIM_KILO_PASCAL": kPa,
			"Pa": times(1 / pascalPerMmHg),
		}
	case glucoseUnits:
		mmol := times(iomt.MgdLPerMmolL)
		return map[string]linear{
			"mg/dL": same, "mg/dl": same, "MDC_DIM_MILLI_G_PER_DL": same,
			"mmol/L": mmol, "mmol/l": mmol, "MDC_DIM_MILLI_MOLE_PER_L": mmol,
			"g/L": times(100),
			// Bluetooth's Glucose Measurement characteristic reports kg/L or mol/L.
			"kg/L": times(1e5), "mol/L": times(1000 * iomt.MgdLPerMmolL),
		}
	case massUnits:
		lb := times(kgPerPound)
		return map[string]linear{
			"kg": same, "MDC_DIM_KILO_G": same,
			"g": times(0.001), "MDC_DIM_X_G": times(0.001),
			"[lb_av]": lb, "lb": lb, "lbs": lb, "MDC_DIM_LB": lb,
		}
	case lengthUnits:
		in := times(cmPerInch)
		return map[string]linear{
			"cm": same, "MDC_DIM_CENTI_M": same,
			"m": times(100), "mm": times(0.1),
			"[in_i]": in, "in": in, "MDC_DIM_INCH": in,
		}
	case bmiUnits:
		return map[string]linear{"kg/m2": same, "kg.m-2": same, "MDC_DIM_KG_PER_M_SQ": same}
	case stepUnits:
		return map[string]linear{
			"{steps}": same, "{step}": same, "steps": same, "count": same, "{count}": same, "1": same,
			"MDC_DIM_X_STEP": same,
		}
	case voltageUnits:
		uV := times(0.001)
		return map[string]linear{
			"mV": same, "MDC_DIM_MILLI_VOLT": same,
			"uV": uV, "µV": uV, "μV": uV, "MDC_DIM_MICRO_VOLT": uV,
			"V": times(1000),
		}
	case arbitraryUnits:
		// SenML's "/" is a plain ratio here, not a percentage.
		return map[string]linear{"1": same, "/": same, "MDC_DIM_DIMLESS": same}
	case eventUnits:
		// SenML's switch ratio: 1 = detected.
		return map[string]linear{"1": same, "/": same}
	case flowUnits:
		return map[string]linear{"L/min": same, "l/min": same, "MDC_DIM_X_L_PER_MIN": same}
	case scoreUnits:
		return map[string]linear{"{score}": same}
	case speedUnits:
		// MDC unit names only where the reference messages confirm them; otherwise UCUM.
		mPerMin := times(0.06)
		return map[string]linear{
			"km/h":  same,
			"m/min": mPerMin, "MDC_DIM_M_PER_MIN": mPerMin,
			"m/s": times(3.6),
		}
	case countUnits:
		return map[string]linear{"{count}": same, "count": same, "1": same, "MDC_DIM_DIMLESS": same}
	case durationUnits:
		return map[string]linear{"ms": same, "s": times(1000), "MDC_DIM_SEC": times(1000)}
	}
	return map[string]linear{}
}

// unitList is the canonical unit followed by the other accepted units, sorted.
func (c Code) unitList(conv map[string]linear) []string {
	var rest []string
	for u := range conv {
		if u != c.Unit {
			rest = append(rest, u)
		}
	}
	slices.Sort(rest)
	if c.Kind == Panel {
		return rest
	}
	return append([]string{c.Unit}, rest...)
}
