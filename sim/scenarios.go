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

// scenarios resolves the scenarios that beds name: built-in ones by name, files (see
// IsScenarioFile) read once each, so ten thousand beds of one file parse it once.
func scenarios(beds []Bed) (map[string]sensing.Scenario, error) {
	scs := sensing.Builtin()
	for _, b := range beds {
		if _, ok := scs[b.Scenario]; ok {
			continue
		}
		if !IsScenarioFile(b.Scenario) {
			names := slices.Sorted(maps.Keys(sensing.Builtin()))
			return nil, fmt.Errorf("unknown scenario %q: give a built-in one (%s) or a scenario file (.yaml)", b.Scenario, strings.Join(names, ", "))
		}
		sc, err := LoadScenarioFile(b.Scenario)
		if err != nil {
			return nil, err
		}
		scs[b.Scenario] = sc
	}
	return scs, nil
}

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
