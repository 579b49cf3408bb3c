//go:build unix

package postgres

import (
	"syscall"
	"time"
)

// clientCPU is the CPU time this process has used (user and system), for benchmarks.
func clientCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
