package gateway

import (
	"errors"

	"github.com/edgegate/edgegate/access"
	"github.com/edgegate/edgegate/mqtt"
)

// compileAuth compiles the auth section with what it needs to know of the
// MQTT listeners; a relative users file is read from dir.
func compileAuth(cfg Config, dir string) (*access.Checker, error) {
	ls := make([]access.Listener, len(cfg.MQTT.Listeners))
	for i, l := range cfg.MQTT.Listeners {
		ls[i] = access.Listener{ID: l.ID, Address: l.Address, ClientCerts: l.VerifiesClients()}
	}
	return access.Compile(cfg.Auth, access.Options{Dir: dir, Listeners: ls})
}

// Warnings are what the configuration leaves open beyond loopback
// (anonymous access, no ACL); the gateway logs them at every start and
// reload.
func (c *Compiled) Warnings() []string { return c.access.Warnings() }

// setAccess installs the compiled auth section in the broker, with the
// gateway's Verifier (kept across reloads, with its cache), and logs what
// it leaves open beyond loopback.
func (g *Gateway) setAccess(c *access.Checker) {
	for _, w := range c.Warnings() {
		g.log.Warn(w)
	}
	g.broker.SetAccess(brokerAccess{c.WithVerifier(g.verifier)})
}

// brokerAccess is an access.Checker as the broker's mqtt.Access (access
// must not import mqtt).
type brokerAccess struct{ c *access.Checker }

var (
	_ mqtt.Access         = brokerAccess{}
	_ mqtt.DenialObscurer = brokerAccess{}
)

func (a brokerAccess) Authenticate(ci mqtt.ConnectInfo) (mqtt.Identity, error) {
	id, err := a.c.Authenticate(access.Request{
		ClientID:     ci.ClientID,
		Username:     ci.Username,
		Password:     ci.Password,
		CertIdentity: ci.CertIdentity,
	})
	if err != nil {
		return mqtt.Identity{}, refusal(err)
	}
	return mqtt.Identity(id), nil
}

func (a brokerAccess) CanPublish(id mqtt.Identity, topic string) bool {
	return a.c.CanPublish(access.Identity(id), topic)
}

func (a brokerAccess) CanSubscribe(id mqtt.Identity, filter string) bool {
	return a.c.CanSubscribe(access.Identity(id), filter)
}

func (a brokerAccess) Admits(id mqtt.Identity) bool { return a.c.Admits(access.Identity(id)) }

func (a brokerAccess) ObscureDenials() bool { return a.c.ObscureDenials() }

// refusal maps why access refused a client to the CONNACK it gets. An
// unknown user and a wrong password look the same to the client.
func refusal(err error) error {
	var ae *access.Error
	if !errors.As(err, &ae) {
		return err
	}
	r := &mqtt.Refusal{Reason: ae.Reason, Auth: true}
	switch ae.Reason {
	case access.ReasonUnknownUser, access.ReasonWrongPassword:
		r.Err = mqtt.ErrBadCredentials
	case access.ReasonClientID:
		r.Err = mqtt.ErrClientIDNotValid
	case access.ReasonBusy:
		r.Err, r.Auth = mqtt.ErrServerBusy, false
	default:
		r.Err = mqtt.ErrNotAuthorized
	}
	return r
}
