package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/edgegate/edgegate/gateway"
)

// adminFlags choose and authenticate the admin API of a running gateway:
// the one owner of --admin, --token, --token-file, --cacert, --cert,
// --key and EDGEGATE_TOKEN for every command that calls it.
type adminFlags struct {
	admin, token, tokenFile, cacert string
	cert, key                       string // a client certificate (admin.tls.client_ca_file)
}

const defaultAdmin = "http://127.0.0.1:8080"

// tokenEnv is the environment variable that holds an admin token.
const tokenEnv = "EDGEGATE_TOKEN"

func (f *adminFlags) flags(fs *pflag.FlagSet, adminHelp string) {
	fs.StringVar(&f.admin, "admin", "", adminHelp)
	fs.StringVar(&f.token, "token", "", "bearer token for the admin API (default $"+tokenEnv+"; visible in ps: prefer --token-file)")
	fs.StringVar(&f.tokenFile, "token-file", "", "read the bearer token from this `file` (its first line)")
	fs.StringVar(&f.cacert, "cacert", "", "PEM `file` of the CA that signed an https admin API's certificate (default: the system's)")
	fs.StringVar(&f.cert, "cert", "", "PEM `file` of a client certificate for an admin API with admin.tls.client_ca_file (with --key)")
	fs.StringVar(&f.key, "key", "", "PEM `file` of the client certificate's key")
}

// client returns a client of the admin API at --admin, else at base.
func (f *adminFlags) client(base string) (*gateway.BufferClient, error) {
	if f.admin != "" {
		base = f.admin
	}
	opts := gateway.ClientOptions{Token: f.token}
	switch {
	case f.token != "" && f.tokenFile != "":
		return nil, usageError("--token and --token-file: give one")
	case f.tokenFile != "":
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		if opts.Token = strings.TrimSpace(line); opts.Token == "" {
			return nil, fmt.Errorf("--token-file %s: the first line is empty", f.tokenFile)
		}
	case f.token == "":
		opts.Token = os.Getenv(tokenEnv)
	}
	if f.cacert != "" {
		pem, err := os.ReadFile(f.cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		opts.RootCAs = x509.NewCertPool()
		if !opts.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", f.cacert)
		}
	}
	if f.cert != "" || f.key != "" {
		pair, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		opts.Certificates = []tls.Certificate{pair}
	}
	return gateway.NewBufferClient(base, opts), nil
}

// adminURL is the URL of an admin.listen address as seen from this host.
func adminURL(listen string, tls bool) string {
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return scheme + listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return scheme + net.JoinHostPort(host, port)
}
