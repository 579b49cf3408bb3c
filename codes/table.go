package codes

// MDC partitions (IEEE 11073-10101 / -20601 annex H). A numeric MDC code is partition<<16 | term.
const (
	partObj   = 1   // object infrastructure: attributes such as battery charge
	partSCADA = 2   // physiological measurements
	partPHDHF = 129 // personal health devices, health and fitness (IEEE 11073-10441/-10442)
	partPHDAI = 130 // personal health devices, ageing independently (IEEE 11073-10471)
)

func mdc(partition, term uint32) uint32 { return partition<<16 | term }

// entry is a Code with the family of units it accepts.
type entry struct {
	Code
	units unitSet
}

// ecgLead builds one ECG lead waveform. Scale 0.001 mV stores 1 µV per step, finer than any
// ECG front end resolves; ±100 mV is far beyond any surface ECG (a few mV, pacing spikes tens)
// yet catches a µV value sent as mV.
func ecgLead(refID string, term uint32, display string, aliases ...string) entry {
	return entry{Code{
		ID: refID, Display: display, MDC: refID, MDCCode: mdc(partSCADA, term), Aliases: aliases,
		Unit: "mV", Kind: Waveform, Min: -100, Max: 100, Scale: 0.001,
	}, voltageUnits}
}

// table returns the catalog's content, built afresh for each New so that no package-level
// state exists.
//
// Sources. "data:" marks a number confirmed in ../shared/data (the FHIR R4 examples and
// vital-signs profiles, the IHE PCD-01 / Continua HL7 v2 messages). "public:" marks a number
// not present there, taken from published nomenclature tables in open-source IEEE 11073
// stacks and FHIR implementation guides, and cross-checked between at least two of them.
func table() []entry {
	return []entry{
		// data: FHIR Observation-heart-rate, heartrate profile; HL7 pcd01-request2 OBX 147842.
		{Code{
			ID: "8867-4", Display: "Heart rate", LOINC: "8867-4",
			MDC: "MDC_ECG_HEART_RATE", MDCCode: mdc(partSCADA, 16770), Aliases: []string{"hr"},
			Unit: "/min", Kind: Vital, Min: 0, Max: 350,
			FHIRVitalSigns: true, VitalSignsLOINC: "8867-4",
			// A cuff's pulse rate (public: 18474) and an arterial line's (data: pcd01-request2
			// OBX 149522) are heart rates too; FHIR's profile has one code for them all.
			AltMDC: []MDCTerm{
				{"MDC_PULS_RATE_NON_INV", mdc(partSCADA, 18474)},
				{"MDC_BLD_PULS_RATE_INV", mdc(partSCADA, 18450)},
			},
		}, heartRateUnits},
		// LOINC public (not in data); MDC public: MDC_PULS_OXIM_PULS_RATE = 18458.
		// FHIR's heart-rate profile covers it through an added 8867-4 coding.
		{Code{
			ID: "8889-8", Display: "Heart rate by Pulse oximetry", LOINC: "8889-8",
			MDC: "MDC_PULS_OXIM_PULS_RATE", MDCCode: mdc(partSCADA, 18458), Aliases: []string{"pr", "pulse"},
			Unit: "/min", Kind: Vital, Min: 0, Max: 350,
			FHIRVitalSigns: true, VitalSignsLOINC: "8867-4",
		}, heartRateUnits},
		// LOINC data: Observation-respiratory-rate, resprate profile. MDC public: 20490.
		// 200 /min leaves room for neonates and high-frequency ventilation read-outs.
		{Code{
			ID: "9279-1", Display: "Respiratory rate", LOINC: "9279-1",
			MDC: "MDC_RESP_RATE", MDCCode: mdc(partSCADA, 20490), Aliases: []string{"rr", "resp"},
			Unit: "/min", Kind: Vital, Min: 0, Max: 200,
			FHIRVitalSigns: true, VitalSignsLOINC: "9279-1",
		}, respRateUnits},
		// data: Observation-satO2 codes 2708-6, 59408-5 and MDC 150456; the oximeter HL7 message
		// and DeviceMetric-example use 150456. The oxygensat profile fixes 2708-6.
		{Code{
			ID: "59408-5", Display: "Oxygen saturation in Arterial blood by Pulse oximetry", LOINC: "59408-5",
			MDC: "MDC_PULS_OXIM_SAT_O2", MDCCode: mdc(partSCADA, 19384), Aliases: []string{"spo2"},
			Unit: "%", Kind: Vital, Min: 0, Max: 100,
			FHIRVitalSigns: true, VitalSignsLOINC: "2708-6",
		}, saturationUnits},
		// data: as above. Kept apart from 59408-5 because FHIR's profile names it; it has no
		// MDC term of its own here (MDC_PULS_OXIM_SAT_O2 belongs to the oximeter reading).
		{Code{
			ID: "2708-6", Display: "Oxygen saturation in Arterial blood", LOINC: "2708-6",
			Aliases: []string{"sao2"},
			Unit:    "%", Kind: Vital, Min: 0, Max: 100,
			FHIRVitalSigns: true, VitalSignsLOINC: "2708-6",
		}, saturationUnits},
		// LOINC data: Observation-body-temperature, bodytemp profile. MDC_TEMP_BODY public: 19292.
		// The site-specific terms of IEEE 11073-10408 (MDC_TEMP_ORAL 188424 is in the data's
		// thermometer message; the rest public) are filed here: iomt keeps no body site, and
		// FHIR's profile uses 8310-5 whatever the site.
		{Code{
			ID: "8310-5", Display: "Body temperature", LOINC: "8310-5",
			MDC: "MDC_TEMP_BODY", MDCCode: mdc(partSCADA, 19292), Aliases: []string{"temp"},
			Unit: "Cel", Kind: Vital, Min: 20, Max: 46,
			FHIRVitalSigns: true, VitalSignsLOINC: "8310-5",
			AltMDC: []MDCTerm{
				{"MDC_TEMP_ORAL", mdc(partSCADA, 57352)},
				{"MDC_TEMP_RECT", mdc(partSCADA, 57348)},
				{"MDC_TEMP_EAR", mdc(partSCADA, 57356)},
				{"MDC_TEMP_FINGER", mdc(partSCADA, 57360)},
				{"MDC_TEMP_TOE", mdc(partSCADA, 57376)},
				{"MDC_TEMP_AXILLA", mdc(partSCADA, 57380)},
				{"MDC_TEMP_GIT", mdc(partSCADA, 57384)},
				{"MDC_TEMP_TYMP", mdc(partSCADA, 19320)},
			},
		}, temperatureUnits},
		// data: bp profile and examples (LOINC); HL7 bp-continua-wan, pcd01-request (MDC).
		{Code{
			ID: "8480-6", Display: "Systolic blood pressure", LOINC: "8480-6",
			MDC: "MDC_PRESS_BLD_NONINV_SYS", MDCCode: mdc(partSCADA, 18949), Aliases: []string{"sbp", "sys"},
			Unit: "mm[Hg]", Kind: Vital, Min: 20, Max: 320,
			FHIRVitalSigns: true, VitalSignsLOINC: "8480-6",
		}, pressureUnits},
		{Code{
			ID: "8462-4", Display: "Diastolic blood pressure", LOINC: "8462-4",
			MDC: "MDC_PRESS_BLD_NONINV_DIA", MDCCode: mdc(partSCADA, 18950), Aliases: []string{"dbp", "dia"},
			Unit: "mm[Hg]", Kind: Vital, Min: 0, Max: 250,
			FHIRVitalSigns: true, VitalSignsLOINC: "8462-4",
		}, pressureUnits},
		// data: Observation-mbp and the vital-signs value set (LOINC); HL7 messages (MDC).
		{Code{
			ID: "8478-0", Display: "Mean blood pressure", LOINC: "8478-0",
			MDC: "MDC_PRESS_BLD_NONINV_MEAN", MDCCode: mdc(partSCADA, 18951), Aliases: []string{"map"},
			Unit: "mm[Hg]", Kind: Vital, Min: 0, Max: 300,
			FHIRVitalSigns: true, VitalSignsLOINC: "8478-0",
		}, pressureUnits},
		// Arterial line. MDC data: pcd01-request2 OBX 150033/150034/150035. LOINC public
		// ("Invasive Systolic/Diastolic/Mean blood pressure", as AmsterdamUMCdb and the German
		// MII ICU module map them); the profile coding is the plain systolic, diastolic or mean
		// pressure, as the MII arterial-pressure profile adds it. NEWS2 keeps to the cuff.
		{Code{
			ID: "76215-3", Display: "Invasive Systolic blood pressure", LOINC: "76215-3",
			MDC: "MDC_PRESS_BLD_ART_SYS", MDCCode: mdc(partSCADA, 18961), Aliases: []string{"abp-sys", "art-sys"},
			Unit: "mm[Hg]", Kind: Vital, Min: 0, Max: 320,
			FHIRVitalSigns: true, VitalSignsLOINC: "8480-6",
		}, pressureUnits},
		{Code{
			ID: "76213-8", Display: "Invasive Diastolic blood pressure", LOINC: "76213-8",
			MDC: "MDC_PRESS_BLD_ART_DIA", MDCCode: mdc(partSCADA, 18962), Aliases: []string{"abp-dia", "art-dia"},
			Unit: "mm[Hg]", Kind: Vital, Min: 0, Max: 250,
			FHIRVitalSigns: true, VitalSignsLOINC: "8462-4",
		}, pressureUnits},
		{Code{
			ID: "76214-6", Display: "Invasive Mean blood pressure", LOINC: "76214-6",
			MDC: "MDC_PRESS_BLD_ART_MEAN", MDCCode: mdc(partSCADA, 18963), Aliases: []string{"abp-mean", "art-mean"},
			Unit: "mm[Hg]", Kind: Vital, Min: 0, Max: 300,
			FHIRVitalSigns: true, VitalSignsLOINC: "8478-0",
		}, pressureUnits},
		// Pulmonary artery catheter. MDC data: pcd01-request2 OBX 150045/150046/150047. LOINC
		// public (gematik ISiK / MII ICU pulmonary-artery profile: 8440-0, 8385-7, 8414-5).
		// Not vital signs: a PA pressure is no systemic blood pressure, so it gets no 8480-6
		// coding that a search for blood pressure would find. A few mm[Hg] below zero occur
		// with deep inspiration on a ventilator.
		{Code{
			ID: "8440-0", Display: "Pulmonary artery Systolic blood pressure", LOINC: "8440-0",
			MDC: "MDC_PRESS_BLD_ART_PULM_SYS", MDCCode: mdc(partSCADA, 18973), Aliases: []string{"pap-sys"},
			Unit: "mm[Hg]", Kind: Vital, Min: -20, Max: 150,
		}, pressureUnits},
		{Code{
			ID: "8385-7", Display: "Pulmonary artery Diastolic blood pressure", LOINC: "8385-7",
			MDC: "MDC_PRESS_BLD_ART_PULM_DIA", MDCCode: mdc(partSCADA, 18974), Aliases: []string{"pap-dia"},
			Unit: "mm[Hg]", Kind: Vital, Min: -20, Max: 150,
		}, pressureUnits},
		{Code{
			ID: "8414-5", Display: "Pulmonary artery Mean blood pressure", LOINC: "8414-5",
			MDC: "MDC_PRESS_BLD_ART_PULM_MEAN", MDCCode: mdc(partSCADA, 18975), Aliases: []string{"pap-mean"},
			Unit: "mm[Hg]", Kind: Vital, Min: -20, Max: 150,
		}, pressureUnits},
		// data: bp profile (85354-9 with the 8480-6 and 8462-4 slices); HL7 messages carry
		// MDC_PRESS_BLD_NONINV 150020 as the group over systolic, diastolic and mean.
		{Code{
			ID: "85354-9", Display: "Blood pressure panel with all children optional", LOINC: "85354-9",
			MDC: "MDC_PRESS_BLD_NONINV", MDCCode: mdc(partSCADA, 18948), Aliases: []string{"bp"},
			Kind:           Panel,
			FHIRVitalSigns: true, VitalSignsLOINC: "85354-9",
			Components: []string{"8480-6", "8462-4"},
		}, noUnits},
		// data: pcd01-request2 OBX 148065, sent in /min. No LOINC code for a PVC rate is
		// known, none is guessed: the MDC reference id is the ID, as for falls.
		{Code{
			ID: "MDC_ECG_V_P_C_CNT", Display: "Premature ventricular contractions per minute",
			MDC: "MDC_ECG_V_P_C_CNT", MDCCode: mdc(partSCADA, 16993), Aliases: []string{"pvc"},
			Unit: "/min", Kind: Vital, Min: 0, Max: 350,
		}, heartRateUnits},
		// What the ECG watcher measures each minute (watch.ECGMinute). LOINC public: 76282-3
		// in the JP Core FHIR guide's electrocardiogram example (jami-fhir-jp-wg/jp-core-v1x)
		// and the OHDSI LOINC vocabulary; 76643-6 with 80404-7 (the same without a method) in
		// an HRV value set verified against Athena and tx.fhir.org (RicardoLSantos/shorthand).
		// Codes of their own, not 8867-4: NEWS2 and vital-signs searches keep to the devices'
		// heart rate. No MDC term is known for either, none is guessed; nor is a LOINC or MDC
		// code known for RMSSD or AF burden, so those are not stored.
		{Code{
			ID: "76282-3", Display: "Heart rate.beat-to-beat by EKG", LOINC: "76282-3", Aliases: []string{"hr-ecg"},
			Unit: "/min", Kind: Vital, Min: 0, Max: 350,
		}, heartRateUnits},
		// SDNN, the standard deviation of normal-to-normal R-R intervals. 5 s bounds any
		// spread of intervals a heart can have within the recordings this is computed over.
		{Code{
			ID: "76643-6", Display: "R-R interval.standard deviation by EKG", LOINC: "76643-6", Aliases: []string{"sdnn-ecg"},
			Unit: "ms", Kind: Vital, Min: 0, Max: 5000,
		}, durationUnits},
		// LOINC public (not in data). MDC data: ipf_valid-glucose-continua-wan OBX
		// 160184^MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD (term 29112), not 160196, which is venous
		// plasma (below). Other whole-blood sites: public.
		{Code{
			ID: "2339-0", Display: "Glucose [Mass/volume] in Blood", LOINC: "2339-0",
			MDC: "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD", MDCCode: mdc(partSCADA, 29112), Aliases: []string{"glucose", "bg"},
			Unit: "mg/dL", Kind: Vital, Min: 10, Max: 1000,
			AltMDC: []MDCTerm{
				{"MDC_CONC_GLU_VENOUS_WHOLEBLOOD", mdc(partSCADA, 29120)},
				{"MDC_CONC_GLU_ARTERIAL_WHOLEBLOOD", mdc(partSCADA, 29128)},
			},
		}, glucoseUnits},
		// Plasma glucose reads about 11 % above whole blood, so it is a code of its own; most
		// meters are plasma-calibrated and say so (GATT sample type 2, capillary plasma).
		// LOINC and MDC public (terms 29116, 29124, 29132).
		{Code{
			ID: "2345-7", Display: "Glucose [Mass/volume] in Serum or Plasma", LOINC: "2345-7",
			MDC: "MDC_CONC_GLU_CAPILLARY_PLASMA", MDCCode: mdc(partSCADA, 29116), Aliases: []string{"glucose-plasma"},
			Unit: "mg/dL", Kind: Vital, Min: 10, Max: 1000,
			AltMDC: []MDCTerm{
				{"MDC_CONC_GLU_VENOUS_PLASMA", mdc(partSCADA, 29124)},
				{"MDC_CONC_GLU_ARTERIAL_PLASMA", mdc(partSCADA, 29132)},
			},
		}, glucoseUnits},
		// LOINC public: HL7 and gematik CGM implementation guides use 99504-3. MDC public:
		// MDC_CONC_GLU_ISF is term 29140 = 160212 (not 160368).
		{Code{
			ID: "99504-3", Display: "Glucose [Mass/volume] in Interstitial fluid", LOINC: "99504-3",
			MDC: "MDC_CONC_GLU_ISF", MDCCode: mdc(partSCADA, 29140), Aliases: []string{"cgm"},
			Unit: "mg/dL", Kind: Vital, Min: 10, Max: 1000,
		}, glucoseUnits},
		// data: Observation-example and bodyweight profile (LOINC); HL7 scale message (MDC).
		{Code{
			ID: "29463-7", Display: "Body weight", LOINC: "29463-7",
			MDC: "MDC_MASS_BODY_ACTUAL", MDCCode: mdc(partSCADA, 57664), Aliases: []string{"weight"},
			Unit: "kg", Kind: Vital, Min: 0.1, Max: 700,
			FHIRVitalSigns: true, VitalSignsLOINC: "29463-7",
		}, massUnits},
		// data: Observation-body-height and bodyheight profile; HL7 scale message 188740.
		{Code{
			ID: "8302-2", Display: "Body height", LOINC: "8302-2",
			MDC: "MDC_LEN_BODY_ACTUAL", MDCCode: mdc(partSCADA, 57668), Aliases: []string{"height"},
			Unit: "cm", Kind: Vital, Min: 10, Max: 300,
			FHIRVitalSigns: true, VitalSignsLOINC: "8302-2",
		}, lengthUnits},
		// data: Observation-bmi and bmi profile (unit fixed to kg/m2); HL7 scale message 188752.
		{Code{
			ID: "39156-5", Display: "Body mass index (BMI) [Ratio]", LOINC: "39156-5",
			MDC: "MDC_RATIO_MASS_BODY_LEN_SQ", MDCCode: mdc(partSCADA, 57680), Aliases: []string{"bmi"},
			Unit: "kg/m2", Kind: Vital, Min: 5, Max: 200,
			FHIRVitalSigns: true, VitalSignsLOINC: "39156-5",
		}, bmiUnits},
		// LOINC public. No MDC term: IEEE 11073-10441/-10442 define none for a step count, and
		// none is used here rather than a guessed one. The range allows a device's running
		// total since power-on.
		{Code{
			ID: "55423-8", Display: "Number of steps in unspecified time Pedometer", LOINC: "55423-8",
			Aliases: []string{"steps"},
			Unit:    "{steps}", Kind: Vital, Min: 0, Max: 10_000_000,
		}, stepUnits},
		// Health and fitness equipment (IEEE 11073-10441 cardio, -10442 strength), as Continua
		// WAN messages carry them. data: ipf_valid-fitness-*-continua-wan give every name with
		// its number, in partition 129 (MDC_PART_PHD_HF), and the units sent. No LOINC codes
		// are known for these; none is guessed. The messages' MDC_ATTR_TIME_PD_MSMT_ACTIVE is
		// not taken: it is an attribute of the session, set or glucose context above it (a
		// duration of what?), not a reading of its own, so it stays unmapped with the reason.
		{Code{
			ID: "MDC_HF_SPEED", Display: "Speed (fitness equipment)",
			MDC: "MDC_HF_SPEED", MDCCode: mdc(partPHDHF, 110), Aliases: []string{"speed"},
			Unit: "km/h", Kind: Vital, Min: 0, Max: 200,
		}, speedUnits},
		{Code{
			ID: "MDC_HF_REPETITION_COUNT", Display: "Repetition count (strength exercise)",
			MDC: "MDC_HF_REPETITION_COUNT", MDCCode: mdc(partPHDHF, 202), Aliases: []string{"repetitions"},
			Unit: "{count}", Kind: Vital, Min: 0, Max: 100_000,
		}, countUnits},
		{Code{
			ID: "MDC_HF_RESISTANCE", Display: "Resistance (strength exercise load)",
			MDC: "MDC_HF_RESISTANCE", MDCCode: mdc(partPHDHF, 203), Aliases: []string{"resistance"},
			Unit: "kg", Kind: Vital, Min: 0, Max: 1000,
		}, massUnits},
		// Sent in inches: the distance one repetition moves the load.
		{Code{
			ID: "MDC_HF_REPETITION", Display: "Repetition distance (strength exercise)",
			MDC: "MDC_HF_REPETITION", MDCCode: mdc(partPHDHF, 201),
			Unit: "cm", Kind: Vital, Min: 0, Max: 1000,
		}, lengthUnits},

		// ECG leads. data: Observation-ekg codes 131328 (unspecified), 131329 (I), 131330 (II)
		// and 131389 (III, term 317, not 131331, which is V1). aVR/aVL/aVF (318-320) and V1-V6
		// (259-264): public.
		ecgLead("MDC_ECG_ELEC_POTL", 256, "ECG lead, unspecified"),
		ecgLead("MDC_ECG_ELEC_POTL_I", 257, "ECG lead I", "ecg-i"),
		ecgLead("MDC_ECG_ELEC_POTL_II", 258, "ECG lead II", "ecg", "ecg-ii"),
		ecgLead("MDC_ECG_ELEC_POTL_III", 317, "ECG lead III", "ecg-iii"),
		ecgLead("MDC_ECG_ELEC_POTL_AVR", 318, "ECG lead aVR", "ecg-avr"),
		ecgLead("MDC_ECG_ELEC_POTL_AVL", 319, "ECG lead aVL", "ecg-avl"),
		ecgLead("MDC_ECG_ELEC_POTL_AVF", 320, "ECG lead aVF", "ecg-avf"),
		ecgLead("MDC_ECG_ELEC_POTL_V1", 259, "ECG lead V1", "ecg-v1"),
		ecgLead("MDC_ECG_ELEC_POTL_V2", 260, "ECG lead V2", "ecg-v2"),
		ecgLead("MDC_ECG_ELEC_POTL_V3", 261, "ECG lead V3", "ecg-v3"),
		ecgLead("MDC_ECG_ELEC_POTL_V4", 262, "ECG lead V4", "ecg-v4"),
		ecgLead("MDC_ECG_ELEC_POTL_V5", 263, "ECG lead V5", "ecg-v5"),
		ecgLead("MDC_ECG_ELEC_POTL_V6", 264, "ECG lead V6", "ecg-v6"),
		// data: oximeter HL7 message, OBX 150452 with unit 262656^MDC_DIM_DIMLESS, samples
		// 12..234. The amplitude is device-relative (auto-gained), so the unit is UCUM "1" and
		// values are the device's own. Scale 0.001 keeps both integer counts (8 to 20 bit ADCs)
		// and normalised 0..1 signals exact to three decimals; ±2,000,000 keeps Value/Scale
		// inside int32.
		{Code{
			ID: "MDC_PULS_OXIM_PLETH", Display: "Plethysmogram (pulse oximetry)",
			MDC: "MDC_PULS_OXIM_PLETH", MDCCode: mdc(partSCADA, 19380), Aliases: []string{"pleth", "ppg"},
			Unit: "1", Kind: Waveform, Min: -2_000_000, Max: 2_000_000, Scale: 0.001,
		}, arbitraryUnits},

		// No LOINC code for a detected fall. MDC public: IEEE 11073-10471 fall sensor,
		// MDC_AI_TYPE_SENSOR_FALL = term 1 in partition 130, whose observation carries the
		// fall-detected flag. Value 1 = fall detected.
		{Code{
			ID: "MDC_AI_TYPE_SENSOR_FALL", Display: "Fall detected",
			MDC: "MDC_AI_TYPE_SENSOR_FALL", MDCCode: mdc(partPHDAI, 1), Aliases: []string{"fall"},
			Unit: "1", Kind: Event, Min: 0, Max: 1,
		}, eventUnits},
		// NEWS2's charted inputs and its result (RCP 2017). Sources, public: SNOMED CT UK
		// concepts as used by the NHS Wales emergency-department FHIR guide
		// (SynaneticsLtd/emergency-department-ig, NEWS2 and ACVPU examples) and the open
		// nursing core guide's ACVPU value set; LOINC 3151-8 as the "air or supplemental
		// oxygen?" item of the same guides' NEWS2 questionnaires.
		// Oxygen delivery as a flow: 0 L/min is room air, any flow is supplemental oxygen.
		{Code{
			ID: "3151-8", Display: "Inhaled oxygen flow rate", LOINC: "3151-8", Aliases: []string{"o2-flow", "oxygen-flow"},
			Unit: "L/min", Kind: Vital, Min: 0, Max: 70,
		}, flowUnits},
		// Consciousness, charted: 1 Alert, 2 new Confusion, 3 Voice, 4 Pain, 5 Unresponsive
		// (SNOMED findings 248234008, 130987000, 300202002, 450847001, 422768004).
		{Code{
			ID: "1104441000000107", Display: "ACVPU (Alert Confusion Voice Pain Unresponsive) scale score",
			SNOMED: "1104441000000107", Aliases: []string{"acvpu"},
			Unit: "{score}", Kind: Score, Min: 1, Max: 5,
		}, scoreUnits},
		// The aggregate score iomt computes (0 to 20).
		{Code{
			ID: "1104051000000101", Display: "Royal College of Physicians NEWS2 (National Early Warning Score 2) total score",
			SNOMED: "1104051000000101", Aliases: []string{"news2"},
			Unit: "{score}", Kind: Score, Min: 0, Max: 20,
		}, scoreUnits},
		// A pulse oximeter's Device and Sensor Status, IEEE 11073-10404: MDC_PULS_OXIM_DEV_STATUS,
		// partition 2 term 19532 (150604), a BITS-16 (bit 0 most significant: sensor-
		// disconnected, sensor-malfunction, sensor-displaced, sensor-unsupported, sensor-off,
		// interference, searching, questionable pulse, non-pulsatile, erratic, low perfusion,
		// poor, inadequate, processing irregularity, equipment malfunction, extended update).
		// Public: the HL7 PHD implementation guide's BITS tables (HL7/phd). The Bluetooth PLX
		// Device and Sensor Status carries the same bits in its low 16. No LOINC.
		{Code{
			ID: "MDC_PULS_OXIM_DEV_STATUS", Display: "Pulse oximeter device and sensor status",
			MDC: "MDC_PULS_OXIM_DEV_STATUS", MDCCode: mdc(partSCADA, 19532), Aliases: []string{"spo2-status", "oximeter-status"},
			Unit: "1", Kind: SensorStatus, Min: 0, Max: 0xFFFF,
		}, eventUnits},
		// MDC public: attribute 2460 of the object partition = 67996 (also in the Danish PHD
		// FHIR guide's battery-level example).
		{Code{
			ID: "MDC_ATTR_VAL_BATT_CHARGE", Display: "Battery charge",
			MDC: "MDC_ATTR_VAL_BATT_CHARGE", MDCCode: mdc(partObj, 2460), Aliases: []string{"battery", "batt"},
			Unit: "%", Kind: DeviceStatus, Min: 0, Max: 100,
		}, batteryUnits},
	}
}
