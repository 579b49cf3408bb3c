package alarm

import (
	_ "embed"
	"fmt"

	"github.com/iomt/iomt/codes"
)

//go:embed defaults.yaml
var defaultsYAML []byte

// DefaultRuleSet is the embedded adult rule set (defaults.yaml), as a document a tenant can
// start from.
func DefaultRuleSet() (RuleSet, error) { return ParseRuleSetBytes(defaultsYAML) }

// DefaultRules compiles the embedded adult rule set.
func DefaultRules() (*Rules, error) {
	rs, err := DefaultRuleSet()
	if err != nil {
		return nil, fmt.Errorf("alarm: default rules: %w", err)
	}
	r, err := Compile(rs, codes.New())
	if err != nil {
		return nil, fmt.Errorf("alarm: default rules: %w", err)
	}
	return r, nil
}
