package sensing

import "math"

// glucose is a glucose–insulin model: Bergman's minimal model (glucose G, remote insulin
// action X) fed by Hovorka-style two-compartment absorption of meal carbohydrate and of
// subcutaneous insulin, with exercise (immediate insulin-independent uptake and a
// sensitivity rise that lasts hours, the usual cause of nocturnal hypoglycaemia after an
// active afternoon), weak counter-regulation below 70 mg/dL, endogenous insulin secretion
// unless the patient has type 1 diabetes, and an interstitial compartment for the CGM.
//
// Units: G, Gi mg/dL; I µU/mL (= mU/L); time in minutes inside step.
type glucose struct {
	t float64 // seconds since start

	G, X, I  float64
	Gi       float64 // interstitial glucose: what a CGM sees, ~10 min behind
	D1, D2   float64 // gut carbohydrate, mg
	S1, S2   float64 // subcutaneous insulin, mU
	E, Z1, Z float64 // exercise: current effect; sensitivity rise building up (Z1) and acting (Z)
	exercise float64 // current intensity

	type1  bool
	Gb, Ib float64 // basal glucose and insulin
	egp    float64 // endogenous glucose production net of basal uptake, mg/dL/min
	p1     float64 // glucose effectiveness, 1/min
	p2     float64 // insulin action decay, 1/min
	si     float64 // insulin sensitivity, 1/min per µU/mL
	vg     float64 // glucose distribution volume, dL
	vi     float64 // insulin distribution volume, L
	ke     float64 // insulin elimination, 1/min

	events []glEvent
	ei     int
}

type glEvent struct {
	t                     float64 // seconds since start
	meal, bolus, exercise float64
	dur                   float64 // seconds of exercise
}

const (
	tmaxG   = 40.0 // min, carbohydrate absorption time-to-peak (Hovorka)
	tmaxI   = 55.0 // min, rapid-acting insulin absorption time-to-peak (Hovorka)
	bioavG  = 0.8  // fraction of carbohydrate absorbed
	tauISF  = 10.0 // min, plasma-to-interstitium lag seen by a CGM
	hypoLim = 70.0 // mg/dL, counter-regulation threshold
)

func newGlucose(sc *Scenario) *glucose {
	w := sc.Baseline["weight"]
	g := &glucose{
		type1: sc.Diabetes == "type1",
		Gb:    sc.Baseline["glucose"],
		p1:    0.01,
		p2:    0.025,
		si:    5e-4 * sc.InsulinSensitivity,
		vg:    1.6 * w,
		vi:    0.12 * w,
		ke:    0.138,
	}
	basal := sc.Baseline["basal"] * 1000 / 60 // U/h → mU/min
	if !g.type1 {
		basal = 0 // endogenous secretion below stands in for it
		g.Ib = 10
	} else {
		// Steady state of the two subcutaneous compartments and plasma.
		g.S1, g.S2 = basal*tmaxI, basal*tmaxI
		g.Ib = basal / (g.ke * g.vi)
	}
	if g.type1 {
		g.p1 = 0.004 // little insulin-independent uptake without insulin's help
	}
	g.G, g.Gi, g.I = g.Gb, g.Gb, g.Ib
	g.X = g.si * g.Ib
	// Production balances uptake at basal insulin, so the patient sits at Gb until something happens.
	g.egp = g.Gb * (g.p1 + g.X)
	for _, ev := range sc.Timeline {
		if ev.Meal > 0 || ev.Bolus > 0 || ev.Exercise > 0 {
			g.events = append(g.events, glEvent{t: ev.At.Seconds(), meal: ev.Meal, bolus: ev.Bolus, exercise: ev.Exercise, dur: ev.For.Seconds()})
		}
	}
	return g
}

// step integrates up to t (seconds) with basal insulin at basalUph U/h, by explicit Euler in
// steps of at most one second: the fastest rate here is ke ≈ 0.14/min, so that is ample.
func (g *glucose) step(t, basalUph float64) {
	for g.ei < len(g.events) && g.events[g.ei].t <= t {
		ev := g.events[g.ei]
		g.D1 += ev.meal * 1000 * bioavG
		g.S1 += ev.bolus * 1000
		g.ei++
	}
	// Exercise intensity now: any bout in progress.
	g.exercise = 0
	for _, ev := range g.events[:g.ei] {
		if ev.exercise > 0 && t < ev.t+ev.dur {
			g.exercise = math.Max(g.exercise, ev.exercise)
		}
	}
	for g.t < t {
		dt := math.Min(1, t-g.t) / 60 // minutes
		g.t += dt * 60
		g.euler(dt, basalUph)
	}
}

func (g *glucose) euler(dt, basalUph float64) {
	uI := 0.0
	if g.type1 {
		uI = basalUph * 1000 / 60
	}
	ra := g.D2 / tmaxG // mg/min of glucose appearing from the gut
	secretion := 0.0
	if !g.type1 {
		// Beta cells: basal secretion plus a response above 80 mg/dL, none when low.
		secretion = g.ke * g.vi * g.Ib * math.Max(0, 1+0.04*(g.G-g.Gb))
	}
	counter := 0.0
	if g.G < hypoLim {
		counter = 0.2 * (hypoLim - g.G) // mg/dL/min
		if g.type1 {
			counter /= 10 // the glucagon response is lost within a few years of type 1 diabetes
		}
	}
	si := g.si * (1 + g.Z + 0.5*g.E)
	dG := g.egp - g.p1*g.G - g.X*g.G + ra/g.vg + counter - 1.2*g.E
	dX := -g.p2*g.X + g.p2*si*g.I // Bergman's remote insulin, SI = p3/p2, on absolute insulin
	dI := (g.S2/tmaxI+secretion)/g.vi - g.ke*g.I
	dD1 := -g.D1 / tmaxG
	dD2 := (g.D1 - g.D2) / tmaxG
	dS1 := uI - g.S1/tmaxI
	dS2 := (g.S1 - g.S2) / tmaxI
	dE := (g.exercise - g.E) / 10
	// The sensitivity rise (glycogen repletion) builds after exercise through two 4-hour
	// compartments, so it peaks 4–6 hours later, up to about 2.5 times, and lasts the night.
	dZ1 := g.exercise/10 - g.Z1/240
	dZ := (g.Z1 - g.Z) / 240
	dGi := (g.G - g.Gi) / tauISF
	g.G = math.Max(15, g.G+dG*dt)
	g.X += dX * dt
	g.I = math.Max(0, g.I+dI*dt)
	g.D1 += dD1 * dt
	g.D2 += dD2 * dt
	g.S1 += dS1 * dt
	g.S2 += dS2 * dt
	g.E += dE * dt
	g.Z1 += dZ1 * dt
	g.Z += dZ * dt
	g.Gi += dGi * dt
}
