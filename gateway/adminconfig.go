package gateway

import (
	"net"
	"net/netip"
	"strings"

	"github.com/edgegate/edgegate/internal/certfile"
	"github.com/edgegate/edgegate/internal/yamlconf"
)

// AdminConfig is the admin HTTP endpoint (serveAdmin): /healthz and /readyz
// for probes, open to anyone who reaches the port; /metrics, /status,
// POST /-/reload and every other route, which need a bearer token from
// Tokens when Tokens is set.
type AdminConfig struct {
	// Listen is the host:port the endpoint binds; "" disables it. An
	// address beyond loopback needs tokens, or allow_unauthenticated.
	Listen string `yaml:"listen"`
	// Tokens are the bearer tokens that may use the authenticated routes,
	// by their hash. They change with a reload.
	Tokens []AdminToken `yaml:"tokens"`
	// AllowUnauthenticated accepts a Listen beyond loopback without Tokens:
	// an open admin API, warned about at every start.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`
	// TLS serves the endpoint over HTTPS, so a token never crosses a
	// network in clear text.
	TLS AdminTLSConfig `yaml:"tls"`
	// PProf serves Go's profiles (net/http/pprof) under /debug/pprof/,
	// behind the admin tokens like every other non-open route. Off by
	// default: a CPU profile costs the gateway a few percent while it runs.
	// It changes live.
	PProf bool `yaml:"pprof"`
}

// AdminToken is one bearer token of the admin API.
type AdminToken struct {
	// Name identifies the token in logs (never the token itself).
	Name string `yaml:"name"`
	// Hash is what `edgegate passwd` prints for the token.
	Hash string `yaml:"hash"`
}

// AdminTLSConfig is the admin endpoint's server certificate.
type AdminTLSConfig struct {
	// CertFile is the server certificate chain (PEM), leaf first; set it
	// and KeyFile to serve HTTPS. Both are re-read when they change.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the certificate's private key (PEM).
	KeyFile string `yaml:"key_file"`
	// ClientCAFile, a PEM bundle of CAs, lets clients authenticate with a
	// certificate one of them signed (mTLS) instead of a token: a request
	// over a verified client certificate needs no token. Without tokens
	// it is the only way in. Needs CertFile and KeyFile.
	ClientCAFile string `yaml:"client_ca_file"`
}

func (t AdminTLSConfig) enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// authRequired reports whether requests to the authenticated routes need a
// token or a client certificate.
func (a AdminConfig) authRequired() bool { return len(a.Tokens) > 0 || a.TLS.ClientCAFile != "" }

// maxHashLen bounds a configured hash (an argon2id PHC string is ~100
// bytes, bcrypt 60).
const maxHashLen = 1024

// validate checks the admin section; paths are relative to it.
func (a AdminConfig) validate() error {
	var errs yamlconf.List
	if a.Listen != "" {
		if _, _, err := net.SplitHostPort(a.Listen); err != nil {
			errs.Add(yamlconf.Key("listen"), "%q must be host:port", a.Listen)
		} else if !loopbackOnly(a.Listen) && !a.authRequired() && !a.AllowUnauthenticated {
			errs.Add(yamlconf.Key("listen"), "%q is reachable beyond loopback and admin.tokens is not set: "+
				"set admin.tokens (hashes printed by edgegate passwd), listen on 127.0.0.1, "+
				"or set admin.allow_unauthenticated: true to open the admin API to anyone who reaches it", a.Listen)
		}
	}
	if a.AllowUnauthenticated && a.authRequired() {
		errs.Add(yamlconf.Key("allow_unauthenticated"), "cannot be combined with admin.tokens or admin.tls.client_ca_file: with them, every route but /healthz and /readyz needs a token or a client certificate")
	}
	names := map[string]int{}
	for i, t := range a.Tokens {
		at := yamlconf.Key("tokens").Index(i)
		if !gatewayIDPattern.MatchString(t.Name) {
			errs.Add(at.Key("name"), "%q must be 1-64 letters, digits, '.', '_' or '-'", t.Name)
		} else if j, dup := names[t.Name]; dup {
			errs.Add(at.Key("name"), "%q is also the name of tokens[%d]", t.Name, j)
		} else {
			names[t.Name] = i
		}
		if !plausibleHash(t.Hash) {
			errs.Add(at.Key("hash"), "must be a hash printed by edgegate passwd (starting with $), never the token itself")
		}
	}
	errs.Nest(yamlconf.Key("tls"), a.TLS.validate())
	return errs.Err()
}

// plausibleHash reports whether h looks like a modular crypt / PHC hash
// string: it starts with '$' and holds only printable ASCII without
// spaces. Package access parses and verifies it.
func plausibleHash(h string) bool {
	if len(h) < 2 || len(h) > maxHashLen || h[0] != '$' {
		return false
	}
	for i := 0; i < len(h); i++ {
		if h[i] <= ' ' || h[i] > '~' {
			return false
		}
	}
	return true
}

// validate checks the tls section by loading its pair; paths are relative
// to it.
func (t AdminTLSConfig) validate() error {
	var errs yamlconf.List
	if t.ClientCAFile != "" {
		if !t.enabled() {
			errs.Add(yamlconf.Key("client_ca_file"), "needs admin.tls.cert_file and key_file: client certificates are checked over HTTPS")
		} else if _, err := certfile.LoadCAs(t.ClientCAFile); err != nil {
			errs.Add(yamlconf.Key("client_ca_file"), "%v", err)
		}
	}
	errs.Nest(yamlconf.Path{}, certfile.Check(t.CertFile, t.KeyFile))
	return errs.Err()
}

// loopbackOnly reports whether a listen address (host:port) accepts
// connections from this host only: its host is a loopback IP or
// "localhost". An empty host, 0.0.0.0 or :: listen on every interface; any
// other name or address is taken as reachable from the network.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
