package main

import (
	"fmt"
	"os"
	"strings"
)

// BootstrapEnv is the environment variable that may hold the bootstrap token. Secrets come
// from the environment or a file, never from argv, where `ps` shows them to every user.
const BootstrapEnv = "IOMT_BOOTSTRAP_TOKEN"

// readSecret returns the secret in file (its first line, trimmed), or else the value of the
// environment variable env; "" if neither is set.
func readSecret(file, env string, getenv func(string) string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read secret: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		if line = strings.TrimSpace(line); line == "" {
			return "", fmt.Errorf("secret file %s is empty", file)
		}
		return line, nil
	}
	return strings.TrimSpace(getenv(env)), nil
}
