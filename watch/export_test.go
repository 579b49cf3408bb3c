package watch

import "time"

// SetClock sets the wall clock an ECG watcher times segments' arrival by.
func SetClock(w *ECG, now func() time.Time) { w.now = now }
