// Package config fills a flag set from three sources in order of precedence: command-line
// flags, IOMT_* environment variables, then an optional YAML config file. Every setting is a
// flag, so `iomt <command> -h` is the one complete list; the variable for flag --data-dir is
// IOMT_DATA_DIR and its key in the file is data-dir.
package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// FileFlag names the flag (and IOMT_CONFIG variable) that points at the config file.
const FileFlag = "config"

// EnvName is the environment variable that sets flag name.
func EnvName(flagName string) string {
	return "IOMT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs, then fills each flag not given on the command line from the
// environment (getenv) or, failing that, from the config file. fs must define a string flag
// named FileFlag. Unknown keys in the file are errors, so a typo does not pass silently.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if fs.Lookup(FileFlag) == nil {
		return errors.New("config: flag set has no -config flag")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	var firstErr error
	set := func(name, value, source string) {
		if err := fs.Set(name, value); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("config: %s: invalid value %q for %s: %v", source, value, name, err)
		}
	}
	fromEnv := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		env := EnvName(f.Name)
		if v, ok := lookup(getenv, env); ok {
			set(f.Name, v, "environment variable "+env)
			fromEnv[f.Name] = true
		}
	})
	if firstErr != nil {
		return firstErr
	}
	path := fs.Lookup(FileFlag).Value.String()
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: read file: %w", err)
	}
	var file map[string]any
	if err := yaml.Unmarshal(data, &file); err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	for k, v := range file {
		f := fs.Lookup(k)
		if f == nil || k == FileFlag {
			return fmt.Errorf("config: %s: unknown setting %q (settings are the flags of `iomt %s -h`)", path, k, fs.Name())
		}
		if given[k] || fromEnv[k] {
			continue
		}
		if v == nil {
			continue
		}
		set(k, fmt.Sprint(v), path)
	}
	return firstErr
}

func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}
