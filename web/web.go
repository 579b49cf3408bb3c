// Package web is iomt's dashboard: a live ward view with alarms in their IEC 60601-1-8 priority
// colours, and a patient page with its alarms (acknowledge, silence, resolve, history), a live
// ECG strip and trends. Everything it needs is embedded in the binary (hospital networks are often
// offline); it reads the REST API with the token the user gives it.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the dashboard's files.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The pages hold no data of their own; the API's answers carry their own rules.
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}
