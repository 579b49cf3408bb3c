package identity

import (
	"fmt"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// totpOpts are RFC 6238's defaults, which every authenticator app speaks: 30 s steps, six
// digits, SHA-1, one step of clock skew either way.
var totpOpts = totp.ValidateOpts{Period: 30, Skew: 1, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// NewTOTP returns a new second-factor secret for login and its otpauth:// URL (what an
// authenticator app scans as a QR code).
func NewTOTP(issuer, login string) (secret, url string, err error) {
	k, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: login})
	if err != nil {
		return "", "", fmt.Errorf("identity: generate TOTP secret: %w", err)
	}
	return k.Secret(), k.URL(), nil
}

// totpStep returns the time step a code is valid for at t (within the skew), or -1.
func totpStep(secret, code string, t time.Time) int64 {
	for _, d := range []int64{0, -1, 1} {
		at := t.Add(time.Duration(d*int64(totpOpts.Period)) * time.Second)
		want, err := totp.GenerateCodeCustom(secret, at, totpOpts)
		if err == nil && len(code) == len(want) && code == want {
			return at.Unix() / int64(totpOpts.Period)
		}
	}
	return -1
}

// TOTPCode returns the code for secret at t (tests and the demo use it).
func TOTPCode(secret string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, t, totpOpts)
}
