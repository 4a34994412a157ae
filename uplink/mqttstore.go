package uplink

import (
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/VictoriaMetrics/metrics"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// The MQTT session store: where paho keeps the publishes that await a
// PUBACK, and what the sender learns from it.
//
// The sender's client comes from pahoclient.New, which wraps this store
// once more so that paho's resume gets private copies of the stored
// packets (paho v1.5.1 sets DUP on them while its writer may be sending
// the same packet; see internal/pahoclient). The resume itself is kept: it
// resends the unacknowledged publishes in publish order and completes their
// tokens at once, so a Send caught by a reconnect fails fast (epoch) and
// paho's packet ids are freed. Send still counts nothing delivered across a
// reconnect; the forward loop sends the whole batch again.

var _ paho.Store = (*guardedStore)(nil)

// newSessionStore returns the store cfg.MQTT.SessionStore names: paho's
// FileStore in StateDir (created if missing) or a MemoryStore.
func newSessionStore(cfg Config) (paho.Store, error) {
	if cfg.MQTT.SessionStore == SessionStoreMemory {
		return paho.NewMemoryStore(), nil
	}
	if err := os.MkdirAll(cfg.MQTT.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	return paho.NewFileStore(cfg.MQTT.StateDir), nil
}

// guardedStore wraps paho's FileStore: it turns the panics FileStore raises
// on file errors (a full or read-only disk) into a log line and a metric,
// and bumps the sender's epoch when paho lists the store to resume, because
// resuming completes waiting tokens without their PUBACK. A message that
// could not be stored is still sent; if the connection drops before its
// PUBACK, its Send times out and the forward loop sends it again.
type guardedStore struct {
	inner    paho.Store
	onResume func()
	log      *slog.Logger
	errors   *metrics.Counter

	once sync.Once
}

func (g *guardedStore) guard(op string) {
	if r := recover(); r != nil {
		g.errors.Inc()
		g.once.Do(func() {
			g.log.Error("mqtt session store failed: unacknowledged messages may not survive a reconnect (the buffer still holds them)",
				"op", op, "err", fmt.Sprint(r))
		})
	}
}

// Open implements paho.Store.
func (g *guardedStore) Open() {
	defer g.guard("open")
	g.inner.Open()
}

// Put implements paho.Store.
func (g *guardedStore) Put(key string, m packets.ControlPacket) {
	defer g.guard("put")
	g.inner.Put(key, m)
}

// Get implements paho.Store.
func (g *guardedStore) Get(key string) (p packets.ControlPacket) {
	defer g.guard("get")
	return g.inner.Get(key)
}

// All implements paho.Store. paho calls it when it resumes a session.
func (g *guardedStore) All() (keys []string) {
	g.onResume()
	defer g.guard("all")
	return g.inner.All()
}

// Del implements paho.Store.
func (g *guardedStore) Del(key string) {
	defer g.guard("del")
	g.inner.Del(key)
}

// Close implements paho.Store.
func (g *guardedStore) Close() {
	defer g.guard("close")
	g.inner.Close()
}

// Reset implements paho.Store.
func (g *guardedStore) Reset() {
	defer g.guard("reset")
	g.inner.Reset()
}
