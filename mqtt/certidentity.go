package mqtt

import (
	"crypto/x509"

	mochi "github.com/mochi-mqtt/server/v2"
)

// certIdentity returns the identity taken from the client certificate the
// listener verified for cl, and that certificate; "", nil without one.
//
// Stub until the TLS listeners land (they replace this file with the
// implementation in tls.go).
func (b *Broker) certIdentity(cl *mochi.Client) (identity string, cert *x509.Certificate) {
	return "", nil
}
