package iomt_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/iomt/iomt"
)

func TestCheckGender(t *testing.T) {
	for _, g := range []string{"", "male", "female", "other", "unknown"} {
		if err := iomt.CheckGender(g); err != nil {
			t.Errorf("CheckGender(%q): %v", g, err)
		}
	}
	for _, g := range []string{"m", "F", "Male", " female", "x", "diverse"} {
		err := iomt.CheckGender(g)
		if !errors.Is(err, iomt.ErrInvalid) || !strings.Contains(err.Error(), "male, female, other, unknown") {
			t.Errorf("CheckGender(%q) = %v, want ErrInvalid listing the genders", g, err)
		}
	}
}

func TestJoinName(t *testing.T) {
	for _, c := range []struct {
		given  []string
		family string
		want   string
	}{
		{[]string{"Marie", "Salomea"}, "Curie", "Marie Salomea Curie"},
		{nil, "Curie", "Curie"},
		{[]string{"Marie"}, "", "Marie"},
		{[]string{" Marie ", "", "  "}, " Curie", "Marie Curie"},
		{nil, "", ""},
	} {
		if got := iomt.JoinName(c.given, c.family); got != c.want {
			t.Errorf("JoinName(%q, %q) = %q, want %q", c.given, c.family, got, c.want)
		}
	}
}
