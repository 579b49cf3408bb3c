// Package web is iomt's dashboard: a live ward view with alarms in their IEC 60601-1-8 priority
// colours, and a patient page with its alarms (acknowledge, silence, resolve, history), a live
// ECG strip and trends. Everything it needs is embedded in the binary (hospital networks are often
// offline). A user signs in on the page (password and second factor, or the organisation's single
// sign-on); the pages then read the REST API with the session cookie, send the session's CSRF
// token with every write, and sign out after the session's idle timeout.
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
