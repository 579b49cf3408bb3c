package api

import (
	"errors"
	"net/http"
	"os"

	"github.com/iomt/iomt"
)

// textProblem answers 422 when err is iomt.CheckText's refusal (a control character, invalid
// UTF-8 or text over its length limit), naming the field, and reports whether it did.
func textProblem(w http.ResponseWriter, r *http.Request, prefix string, err error) bool {
	var te *iomt.TextError
	if !errors.As(err, &te) {
		return false
	}
	writeProblem(w, r, http.StatusUnprocessableEntity, prefix+`"`+te.Field+`" `+te.Reason)
	return true
}

// checkTexts runs iomt.CheckText on (field, value) pairs, each with its limit, and answers the
// first refusal with 422.
func checkTexts(w http.ResponseWriter, r *http.Request, fields ...textField) bool {
	for _, f := range fields {
		if err := iomt.CheckText(f.name, f.v, f.max); err != nil {
			textProblem(w, r, "", err)
			return false
		}
	}
	return true
}

type textField struct {
	name, v string
	max     int
}

// bodyTimeout answers 408 when reading the body failed because the server's deadline for it
// passed (a client sending it too slowly: see node's body deadline), and reports whether it
// did. The connection is closed after the answer.
func bodyTimeout(w http.ResponseWriter, r *http.Request, err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	w.Header().Set("Connection", "close")
	writeProblem(w, r, http.StatusRequestTimeout, err.Error())
	return true
}
