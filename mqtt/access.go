package mqtt

import (
	"crypto/x509"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/internal/metricname"
	"github.com/edgegate/edgegate/internal/ratelog"
)

// ConnectInfo is what a connecting client presented, for Access.
type ConnectInfo struct {
	Listener   string // listener id
	RemoteAddr string
	// ClientID is the client id in effect (assigned by the broker when the
	// client sent an empty one).
	ClientID string
	// Username and Password are the CONNECT's, unverified.
	Username        string
	Password        []byte
	ProtocolVersion byte // 3, 4 or 5
	// Cert is the leaf of the client certificate the listener verified,
	// nil without one; CertIdentity is the identity taken from it.
	Cert         *x509.Certificate
	CertIdentity string
}

// Identity is an authenticated client.
type Identity struct {
	ClientID string
	// Username is the authenticated identity: the password user or the
	// certificate identity; "" for an anonymous client.
	Username string
	// Method is AuthAnonymous, AuthPassword or AuthCertificate.
	Method string
	// Credential is opaque to the broker: what the Access needs to tell, in
	// Admits, whether what the client proved still holds.
	Credential string
}

// Access decides who may connect and what each client may publish and
// subscribe to. Broker.SetAccess installs one; without one every client is
// let in anonymously and may use every topic.
//
// Every method is called concurrently from client goroutines and must be
// safe for that. Authenticate runs on the connecting client's goroutine
// before its CONNACK and may block (hashing); the others run for every
// PUBLISH, SUBSCRIBE and delivery and must be fast.
type Access interface {
	// Authenticate decides who a connecting client is. A refusal is an
	// error: a *Refusal decides the CONNACK code and the reason counted
	// (any other error refuses with "not authorized", reason "error").
	Authenticate(ConnectInfo) (Identity, error)
	// CanPublish reports whether id may publish to topic. It is also asked
	// for a client's will topic when it connects (a will it denies is
	// removed) and again for connected clients by SetAccess.
	CanPublish(id Identity, topic string) bool
	// CanSubscribe reports whether id may subscribe to filter (a
	// $share/{group}/ prefix removed), and, with a topic name, whether a
	// subscription of id may receive a message published to it.
	CanSubscribe(id Identity, filter string) bool
	// Admits reports whether a client that authenticated as id, maybe
	// under the Access this one replaces, may stay connected.
	Admits(id Identity) bool
}

// DenialObscurer is an optional interface of an Access: when
// ObscureDenials is true, MQTT 5 clients are told 0x80 (unspecified
// error) instead of 0x87 (not authorized) for a denied SUBSCRIBE filter or
// PUBLISH, so that a client does not learn that authorization was the
// reason (mochi's Compatibilities.ObscureNotAuthorized, for publishes
// too). MQTT 3.1.1 has only 0x80 for subscriptions anyway.
type DenialObscurer interface {
	ObscureDenials() bool
}

// Why Authenticate refuses a client; each decides the CONNACK code.
var (
	// ErrBadCredentials: MQTT 5 0x86, MQTT 3.1.1 0x04.
	ErrBadCredentials = errors.New("mqtt: bad user name or password")
	// ErrNotAuthorized: MQTT 5 0x87, MQTT 3.1.1 0x05.
	ErrNotAuthorized = errors.New("mqtt: not authorized")
	// ErrClientIDNotValid: MQTT 5 0x85, MQTT 3.1.1 0x02.
	ErrClientIDNotValid = errors.New("mqtt: client identifier not valid")
	// ErrServerBusy (try again later): MQTT 5 0x89, MQTT 3.1.1 0x03.
	ErrServerBusy = errors.New("mqtt: server busy")
)

// Refusal is how Authenticate refuses a client: Err is one of
// ErrBadCredentials, ErrNotAuthorized, ErrClientIDNotValid, ErrServerBusy;
// Reason labels the refusal in metrics and logs (a short snake_case word
// from a small fixed set, e.g. "wrong_password").
type Refusal struct {
	Err    error
	Reason string
	// Auth marks a failure to authenticate (counted in
	// edgegate_mqtt_auth_failures_total as well), as opposed to a refusal
	// of a client that could not be served.
	Auth bool
}

func (r *Refusal) Error() string { return r.Err.Error() + " (" + r.Reason + ")" }
func (r *Refusal) Unwrap() error { return r.Err }

// connackCodes maps a refusal to its CONNACK code: MQTT 5, MQTT 3.x.
var connackCodes = []struct {
	err    error
	v5, v3 byte
}{
	{ErrBadCredentials, packets.ErrBadUsernameOrPassword.Code, packets.ErrMalformedUsernameOrPassword.Code},
	{ErrClientIDNotValid, packets.ErrClientIdentifierNotValid.Code, packets.Err3ClientIdentifierNotValid.Code},
	{ErrServerBusy, packets.ErrServerBusy.Code, packets.Err3ServerUnavailable.Code},
	{ErrNotAuthorized, packets.ErrNotAuthorized.Code, packets.Err3NotAuthorized.Code},
}

// auditInterval is how often one kind of refusal or denial is logged at
// most (internal/ratelog: the rest are summed up in one line).
const auditInterval = 10 * time.Second

// accessState is the broker's side of Access: the one installed, the
// identity of every client, the audit counters and logs.
type accessState struct {
	cur     atomic.Pointer[accessBox] // nil: allow everything
	ids     sync.Map                  // *mochi.Client → *Identity
	obscure atomic.Bool               // the current Access's ObscureDenials

	set                   *metrics.Set
	aclPublish, aclSubscr *metrics.Counter
	revoked               *metrics.Counter

	auditMu sync.Mutex
	audit   map[string]*ratelog.Limiter // by kind of refusal or denial
}

type accessBox struct{ a Access }

// initAccess sets up the access state; New calls it. Metrics:
//
//	edgegate_mqtt_connections_refused_total{reason=...}  refused CONNECTs
//	edgegate_mqtt_auth_failures_total{reason=...}  of those, failed authentications
//	edgegate_mqtt_acl_denied_total{action="publish|subscribe"}
//	edgegate_mqtt_revoked_disconnects_total  clients disconnected by SetAccess
func (b *Broker) initAccess(set *metrics.Set) {
	b.acc = &accessState{
		set:        set,
		aclPublish: set.GetOrCreateCounter(`edgegate_mqtt_acl_denied_total{action="publish"}`),
		aclSubscr:  set.GetOrCreateCounter(`edgegate_mqtt_acl_denied_total{action="subscribe"}`),
		revoked:    set.GetOrCreateCounter(`edgegate_mqtt_revoked_disconnects_total`),
		audit:      map[string]*ratelog.Limiter{},
	}
}

// maxAuditKinds bounds the kinds of audit lines; the reasons come from a
// small fixed set, the rest share one line.
const maxAuditKinds = 64

// auditLog logs a refusal or denial of one kind at most once per
// auditInterval (ratelog: the first at once, the rest summed up).
func (b *Broker) auditLog(kind, msg string, args ...any) {
	b.acc.auditMu.Lock()
	l := b.acc.audit[kind]
	if l == nil {
		if len(b.acc.audit) >= maxAuditKinds {
			kind = "other"
			l = b.acc.audit[kind]
		}
		if l == nil {
			l = ratelog.New(b.log, slog.LevelWarn, msg, auditInterval)
			b.acc.audit[kind] = l
		}
	}
	b.acc.auditMu.Unlock()
	l.Log(args...)
}

// stopAudit writes the pending audit summaries; Run calls it last.
func (b *Broker) stopAudit() {
	b.acc.auditMu.Lock()
	defer b.acc.auditMu.Unlock()
	for _, l := range b.acc.audit {
		l.Stop()
	}
}

// SetAccess installs a (nil: allow everything) for every check from now
// on, safe while Run is active. Connected clients keep going under the new
// rules, except those a no longer admits: they are disconnected (MQTT 5:
// DISCONNECT 0x87) without publishing their will. A client whose will
// topic a no longer grants keeps its connection and loses its will.
func (b *Broker) SetAccess(a Access) {
	if a == nil {
		b.acc.cur.Store(nil)
		b.acc.obscure.Store(false)
		return
	}
	ob, ok := a.(DenialObscurer)
	b.acc.obscure.Store(ok && ob.ObscureDenials())
	b.acc.cur.Store(&accessBox{a})
	// Clients that authenticate concurrently re-check with a once they
	// have stored their identity (onConnect), so none slips between.
	b.acc.ids.Range(func(k, v any) bool {
		cl, id := k.(*mochi.Client), v.(*Identity)
		switch {
		case !a.Admits(*id):
			b.revoke(cl, id)
		case atomic.LoadUint32(&cl.Properties.Will.Flag) == 1 && !a.CanPublish(*id, cl.Properties.Will.TopicName):
			atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
			b.log.Info("will dropped: the new ACL does not grant its topic", "client_id", cl.ID, "user", id.Username)
		}
		return true
	})
}

// revoke ends a client the current Access no longer admits.
func (b *Broker) revoke(cl *mochi.Client, id *Identity) {
	atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
	b.acc.ids.Delete(cl) // an offline session delivers nothing from now on
	if cl.Closed() {
		return
	}
	b.acc.revoked.Inc()
	b.log.Info("client disconnected: its credentials are no longer valid", "client_id", cl.ID, "user", id.Username, "auth", id.Method)
	if cur, ok := b.srv.Clients.Get(cl.ID); ok && cur == cl && cl.Properties.ProtocolVersion == 5 {
		_ = b.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
		return
	}
	cl.Stop(packets.ErrNotAuthorized)
}

func (b *Broker) access() Access {
	if box := b.acc.cur.Load(); box != nil {
		return box.a
	}
	return nil
}

// identity returns the identity cl authenticated as; an anonymous one if
// it has none.
func (b *Broker) identity(cl *mochi.Client) Identity {
	if v, ok := b.acc.ids.Load(cl); ok {
		return *v.(*Identity)
	}
	return Identity{ClientID: cl.ID, Method: AuthAnonymous}
}

// allowPublish decides a device PUBLISH (or will) to topic; a denial is
// counted and logged.
func (b *Broker) allowPublish(cl *mochi.Client, topic string) bool {
	a := b.access()
	if a == nil {
		return true
	}
	v, ok := b.acc.ids.Load(cl)
	if ok && a.CanPublish(*v.(*Identity), topic) {
		return true
	}
	b.acc.aclPublish.Inc()
	id := b.identity(cl)
	b.auditLog("acl:publish", "publish denied by the ACL", "client_id", cl.ID, "user", id.Username, "topic", topic)
	return false
}

// willPermitted is the publish ACL check of a will's topic, made once at
// connect by the presence hook, which removes a will that fails it (mochi
// checks no will against OnACLCheck); SetAccess repeats it for connected
// clients.
func (b *Broker) willPermitted(cl *mochi.Client, topic string) bool {
	a := b.access()
	if a == nil {
		return true
	}
	v, ok := b.acc.ids.Load(cl)
	return ok && a.CanPublish(*v.(*Identity), topic)
}

// deniedCode is the reason code of a denied PUBLISH for MQTT 5.
func (b *Broker) deniedCode() packets.Code {
	if b.acc.obscure.Load() {
		return packets.ErrUnspecifiedError
	}
	return packets.ErrNotAuthorized
}

// allowSubscribe decides whether cl may subscribe to filter, or receive a
// message published to a topic.
func (b *Broker) allowSubscribe(cl *mochi.Client, filter string) bool {
	a := b.access()
	if a == nil || cl.Net.Inline {
		return true
	}
	v, ok := b.acc.ids.Load(cl)
	return ok && a.CanSubscribe(*v.(*Identity), unshare(filter))
}

// unshare removes a $share/{group}/ prefix.
func unshare(filter string) string {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, f, ok := strings.Cut(rest, "/"); ok {
			return f
		}
	}
	return filter
}

// onConnect authenticates a connecting client and records its identity;
// false refuses it (the CONNACK is written and the connection closed).
func (b *Broker) onConnect(cl *mochi.Client, pk packets.Packet) bool {
	if pk.Connect.ClientIdentifier == mochi.InlineClientId {
		// A device taking it over would disconnect Broker.Publish.
		return b.refuseConnect(cl, &Refusal{Err: ErrClientIDNotValid, Reason: "reserved_client_id"}, Identity{})
	}
	a := b.access()
	id := Identity{ClientID: cl.ID, Method: AuthAnonymous}
	if a != nil {
		info := ConnectInfo{
			Listener:        cl.Net.Listener,
			RemoteAddr:      cl.Net.Remote,
			ClientID:        cl.ID,
			Username:        string(pk.Connect.Username),
			Password:        pk.Connect.Password,
			ProtocolVersion: cl.Properties.ProtocolVersion,
		}
		info.CertIdentity, info.Cert = b.certIdentity(cl)
		var err error
		if id, err = a.Authenticate(info); err != nil {
			var r *Refusal
			if !errors.As(err, &r) {
				r = &Refusal{Err: ErrNotAuthorized, Reason: "error"}
				b.log.Warn("authentication failed", "client_id", cl.ID, "err", err)
			}
			return b.refuseConnect(cl, r, Identity{ClientID: cl.ID, Username: info.Username})
		}
		id.ClientID = cl.ID
	}
	b.acc.ids.Store(cl, &id)
	// A SetAccess since Authenticate may not have seen this client yet.
	if now := b.access(); now != nil && now != a && !now.Admits(id) {
		b.acc.ids.Delete(cl)
		return b.refuseConnect(cl, &Refusal{Err: ErrNotAuthorized, Reason: "revoked"}, id)
	}
	b.log.Info("client connected", "client_id", cl.ID, "user", id.Username, "auth", id.Method,
		"listener", cl.Net.Listener, "remote", cl.Net.Remote, "protocol", cl.Properties.ProtocolVersion)
	return true
}

// refuseConnect writes the CONNACK for r, closes the connection, counts
// and logs (rate-limited); it returns false for OnConnectAuthenticate.
// mochi's own refusal writes 0x86 to MQTT 5 clients and 0x05 to MQTT 3
// clients whatever the reason; this writes the code r calls for.
func (b *Broker) refuseConnect(cl *mochi.Client, r *Refusal, id Identity) bool {
	code := connackCodes[len(connackCodes)-1]
	for _, c := range connackCodes {
		if errors.Is(r.Err, c.err) {
			code = c
			break
		}
	}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: code.v3}
	if cl.Properties.ProtocolVersion == 5 {
		ack.ReasonCode = code.v5
	}
	b.acc.set.GetOrCreateCounter(metricname.With("edgegate_mqtt_connections_refused_total", "reason", r.Reason)).Inc()
	if r.Auth {
		b.acc.set.GetOrCreateCounter(metricname.With("edgegate_mqtt_auth_failures_total", "reason", r.Reason)).Inc()
	}
	if err := cl.WritePacket(ack); err != nil {
		b.log.Debug("write refusing CONNACK", "client_id", cl.ID, "err", err)
	}
	// Closed before mochi writes its own CONNACK, which then fails.
	cl.Stop(r.Err)
	b.auditLog("refused:"+r.Reason, "connection refused", "reason", r.Reason, "client_id", cl.ID,
		"user", id.Username, "listener", cl.Net.Listener, "remote", cl.Net.Remote, "reason_code", ack.ReasonCode)
	return false
}

// forget drops what is kept about a client whose session ended.
func (b *Broker) forget(cl *mochi.Client) { b.acc.ids.Delete(cl) }

// accessHook connects mochi's authentication and ACL calls to Access. It
// is the only hook that provides OnConnectAuthenticate and OnACLCheck
// (mochi allows if ANY hook providing them says yes).
type accessHook struct {
	mochi.HookBase
	b *Broker
}

func (h *accessHook) ID() string { return "edgegate-access" }

func (h *accessHook) Provides(b byte) bool {
	switch b {
	case mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnSubscribe,
		mochi.OnSessionEstablish, mochi.OnDisconnect, mochi.OnClientExpired, mochi.OnPacketEncode:
		return true
	}
	return false
}

// OnConnectAuthenticate runs after every OnConnect hook, when nothing else
// can refuse the client: the identity it records is the client's for as
// long as its session lives.
func (h *accessHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	return h.b.onConnect(cl, pk)
}

// OnACLCheck: publishes are decided in OnPublish (brokerHook), where a
// denial can be answered as each protocol version needs (mochi's own
// denial disconnects an MQTT 3.1.1 client); a read is a SUBSCRIBE's filter
// or a delivery's topic.
func (h *accessHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	return write || h.b.allowSubscribe(cl, topic)
}

// OnSubscribe counts and logs the filters mochi's OnACLCheck will refuse
// (SUBACK 0x87 for MQTT 5, 0x80 for MQTT 3.1.1).
func (h *accessHook) OnSubscribe(cl *mochi.Client, pk packets.Packet) packets.Packet {
	for _, f := range pk.Filters {
		if mochi.IsValidFilter(f.Filter, false) && !h.b.allowSubscribe(cl, f.Filter) {
			h.b.acc.aclSubscr.Inc()
			id := h.b.identity(cl)
			h.b.auditLog("acl:subscribe", "subscribe denied by the ACL", "client_id", cl.ID, "user", id.Username, "filter", f.Filter)
		}
	}
	return pk
}

// OnPacketEncode obscures the SUBACK codes of denied filters when the
// Access asks for it: mochi writes 0x87 (MQTT 5) only for a filter its
// OnACLCheck refused.
func (h *accessHook) OnPacketEncode(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Suback && h.b.acc.obscure.Load() {
		codes := slices.Clone(pk.ReasonCodes) // mochi hands the same slice to OnSubscribed
		for i, c := range codes {
			if c == packets.ErrNotAuthorized.Code {
				codes[i] = packets.ErrUnspecifiedError.Code
			}
		}
		pk.ReasonCodes = codes
	}
	return pk
}

// OnSessionEstablish: a client that takes over a session replaces the
// client object that held it.
func (h *accessHook) OnSessionEstablish(cl *mochi.Client, pk packets.Packet) {
	if old, ok := h.b.srv.Clients.Get(cl.ID); ok && old != cl {
		h.b.forget(old)
	}
}

// OnDisconnect forgets a client whose session ends with the connection,
// or that is no longer the session's client. A persistent session keeps
// its identity: messages queued for it are checked against it.
func (h *accessHook) OnDisconnect(cl *mochi.Client, err error, expire bool) {
	if cur, ok := h.b.srv.Clients.Get(cl.ID); expire || !ok || cur != cl {
		h.b.forget(cl)
	}
}

// OnClientExpired forgets an expired persistent session.
func (h *accessHook) OnClientExpired(cl *mochi.Client) { h.b.forget(cl) }
