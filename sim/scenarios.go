package sim

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/iomt/iomt/sensing"
)

// IsScenarioFile says whether a bed's scenario names a file (a path, or a name ending in
// .yaml or .yml) rather than a built-in scenario.
func IsScenarioFile(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml" || strings.ContainsRune(name, os.PathSeparator)
}

// scenarios resolves the scenarios that beds name (see Scenarios).
func scenarios(beds []Bed) (map[string]sensing.Scenario, error) {
	names := make([]string, len(beds))
	for i, b := range beds {
		names[i] = b.Scenario
	}
	return Scenarios(names)
}

// Scenarios resolves scenario names: built-in ones (BuiltinNames) by name, files (see
// IsScenarioFile) read once each, so ten thousand beds of one file parse it once. The map
// holds every built-in scenario too.
func Scenarios(names []string) (map[string]sensing.Scenario, error) {
	scs := sensing.Builtin()
	for _, n := range names {
		if _, ok := scs[n]; ok {
			continue
		}
		if !IsScenarioFile(n) {
			return nil, fmt.Errorf("unknown scenario %q: give a built-in one (%s) or a scenario file (.yaml)", n, strings.Join(BuiltinNames(), ", "))
		}
		sc, err := LoadScenarioFile(n)
		if err != nil {
			return nil, err
		}
		scs[n] = sc
	}
	return scs, nil
}

// BuiltinNames lists the built-in scenarios, sorted.
func BuiltinNames() []string { return slices.Sorted(maps.Keys(sensing.Builtin())) }

// LoadScenarioFile reads a scenario file (format: sensing/README.md).
func LoadScenarioFile(path string) (sensing.Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return sensing.Scenario{}, fmt.Errorf("scenario file: %w", err)
	}
	defer f.Close()
	sc, err := sensing.LoadScenario(f)
	if err != nil {
		return sensing.Scenario{}, fmt.Errorf("scenario file %s: %w", path, err)
	}
	return sc, nil
}
