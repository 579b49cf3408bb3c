//go:build !unix

package postgres

import "time"

// clientCPU is not measured here; benchmarks then leave out the client CPU figure.
func clientCPU() time.Duration { return 0 }
