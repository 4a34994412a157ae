package uplink

import (
	"strings"

	"github.com/edgegate/edgegate/internal/certfile"
	"github.com/edgegate/edgegate/internal/yamlconf"
)

// AuthConfig holds the credentials of an uplink. At most one of bearer
// token and basic may be set. Secrets read from files are re-read when the
// file changes (checked at most every few seconds, and at once after a 401).
type AuthConfig struct {
	// BearerToken is sent as "Authorization: Bearer <token>" (http only).
	BearerToken string `yaml:"bearer_token"`
	// BearerTokenFile holds the token (surrounding white space is trimmed).
	BearerTokenFile string `yaml:"bearer_token_file"`
	// Basic is HTTP basic auth (http) or the MQTT username and password.
	Basic BasicAuth `yaml:"basic"`
}

// BasicAuth is a username with a password given inline or in a file.
type BasicAuth struct {
	// Username is the user name; required when basic is set. For http it
	// must not contain ':'.
	Username string `yaml:"username"`
	// Password is the password, inline. Prefer PasswordFile: a file
	// readable by the gateway only keeps it out of the configuration.
	Password string `yaml:"password"`
	// PasswordFile holds the password (surrounding white space is
	// trimmed); re-read when it changes.
	PasswordFile string `yaml:"password_file"`
}

// TLSConfig configures the TLS client side of an uplink.
type TLSConfig struct {
	// CAFile is a PEM bundle of CAs that replace the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile is the client certificate (PEM) presented to the server
	// (mTLS), with KeyFile. Both are reloaded when the files change.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the client certificate's private key (PEM).
	KeyFile string `yaml:"key_file"`
	// InsecureSkipVerify disables server certificate checks (testing only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// ServerName overrides the name checked in the server's certificate
	// (and sent as SNI).
	ServerName string `yaml:"server_name"`
}

func (t TLSConfig) isZero() bool { return t == TLSConfig{} }

// redacted hides the inline secrets.
func (a AuthConfig) redacted() AuthConfig {
	if a.BearerToken != "" {
		a.BearerToken = redactedValue
	}
	if a.Basic.Password != "" {
		a.Basic.Password = redactedValue
	}
	return a
}

// validate checks the auth section (paths from it); it reads secret files
// but never echoes a secret.
func (a AuthConfig) validate(mqtt bool) error {
	var errs yamlconf.List
	bearer := a.BearerToken != "" || a.BearerTokenFile != ""
	basic := a.Basic != (BasicAuth{})
	switch {
	case a.BearerToken != "" && a.BearerTokenFile != "":
		errs.Add(yamlconf.Key("bearer_token_file"), "conflicts with auth.bearer_token: set one of them")
	case bearer && mqtt:
		errs.Add(yamlconf.Key("bearer_token"), "not supported for mqtt: use auth.basic or a tls client certificate")
	case bearer && basic:
		errs.Add(yamlconf.Key("basic"), "conflicts with the bearer token: set one of them")
	}
	checkSecret(&errs, "bearer_token", a.BearerToken, a.BearerTokenFile)
	if basic {
		errs.Nest(yamlconf.Key("basic"), a.Basic.validate(mqtt))
	}
	return errs.Err()
}

// checkSecret checks a secret given inline (key) or in a file (key_file):
// no control characters inline, a readable file. It never echoes the
// secret.
func checkSecret(errs *yamlconf.List, key, inline, file string) {
	if inline != "" && !validSecret(inline) {
		errs.Add(yamlconf.Key(key), "must not contain control characters")
	}
	if file != "" {
		if _, err := readSecretFile(file); err != nil {
			errs.Add(yamlconf.Key(key+"_file"), "%v", err)
		}
	}
}

// validate checks basic auth (paths from auth.basic).
func (b BasicAuth) validate(mqtt bool) error {
	var errs yamlconf.List
	switch {
	case b.Username == "":
		errs.Add(yamlconf.Key("username"), "is required")
	case !mqtt && strings.Contains(b.Username, ":"):
		errs.Add(yamlconf.Key("username"), "must not contain ':'")
	case !validSecret(b.Username):
		errs.Add(yamlconf.Key("username"), "must not contain control characters")
	}
	if b.Password != "" && b.PasswordFile != "" {
		errs.Add(yamlconf.Key("password_file"), "conflicts with auth.basic.password: set one of them")
	}
	checkSecret(&errs, "password", b.Password, b.PasswordFile)
	return errs.Err()
}

// validate checks the tls section by loading its files; paths are from
// the sender's section (tls.ca_file).
func (t TLSConfig) validate() error {
	var errs yamlconf.List
	if t.CAFile != "" {
		if _, err := certfile.LoadCAs(t.CAFile); err != nil {
			errs.Add(tlsKey.Key("ca_file"), "%v", err)
		}
	}
	errs.Nest(tlsKey, certfile.Check(t.CertFile, t.KeyFile))
	if strings.ContainsAny(t.ServerName, " /\x00") {
		errs.Add(tlsKey.Key("server_name"), "must be a host name")
	}
	return errs.Err()
}
