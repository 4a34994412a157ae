package gateway

import (
	"strings"
	"time"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/configchannel"
	"github.com/edgegate/edgegate/uplink"
)

// notReady says why device intake is not open, nil when it is: ready
// means devices can connect and what they publish is stored (MQTT
// listeners bound and accepting, the buffer accepting events). Uplinks are
// not part of it: an outage is what the buffer is for, and devices must
// keep connecting through it; their health is in /v1/uplinks and /status.
// Each reason is one line, "component: what is wrong"; more owners may add
// theirs here.
func (g *Gateway) notReady() []string {
	var why []string
	if !g.ready.Load() {
		why = append(why, "mqtt: listeners not accepting connections (starting or stopping)")
	}
	if buf := g.buffer(); buf == nil {
		why = append(why, "buffer: refusing events: "+g.unavailable().Error())
	} else if r := buf.Refusing(); r != "" {
		why = append(why, "buffer: "+r)
	}
	return why
}

// status is GET /status: what the status page and operators look at. It
// never holds secrets.
type status struct {
	GatewayID string    `json:"gateway_id"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	// Now is the gateway's clock: ages on the page are computed against
	// it, not the viewer's.
	Now      time.Time    `json:"now"`
	Ready    bool         `json:"ready"`
	NotReady []string     `json:"not_ready,omitempty"`
	Config   configStatus `json:"config"`
	// Clients counts the connected devices; ClientList lists them (at
	// most ?clients=N of them, sorted by client id).
	Clients    int            `json:"mqtt_clients"`
	ClientList []clientStatus `json:"clients"`
	Counters   counters       `json:"counters"`
	Buffer     buffer.Stats   `json:"buffer"`
	// DeadLetters counts the events stored in dead-letter queues.
	DeadLetters int64          `json:"dead_letters"`
	Uplinks     []uplinkStatus `json:"uplinks"`
	Rules       []ruleStatus   `json:"rules"`
}

// configStatus identifies the configuration in effect.
type configStatus struct {
	// Hash is the SHA-256 of the configuration file (followed by the
	// rules file it includes, if any): `sha256sum edgegate.yaml` gives the
	// same for a file without rules.file.
	Hash         string    `json:"hash"`
	LoadedAt     time.Time `json:"loaded_at"`
	LastReloadOK bool      `json:"last_reload_ok"`
	// Version and Source identify the applied configuration (see
	// GET /v1/config/history): its version and where it came from (file,
	// sighup, admin, pull, mqtt, rollback).
	Version int64  `json:"version"`
	Source  string `json:"source"`
	// Pull and MQTT are the config channels' state, when they are on.
	Pull *configchannel.PullStatus `json:"pull,omitempty"`
	MQTT *configchannel.MQTTStatus `json:"mqtt,omitempty"`
}

type clientStatus struct {
	ClientID        string    `json:"client_id"`
	Username        string    `json:"username,omitempty"`
	Auth            string    `json:"auth"`
	Listener        string    `json:"listener"`
	RemoteAddr      string    `json:"remote_addr"`
	ProtocolVersion byte      `json:"protocol_version"`
	ConnectedSince  time.Time `json:"connected_since"`
	// FairShareDelayed: publishes held back to the device's fair share
	// while the intake is limited (overload.fair_share).
	FairShareDelayed int64 `json:"fair_share_delayed,omitempty"`
}

// counters are totals since start; the page shows rates from their
// differences.
type counters struct {
	Ingested     uint64 `json:"events_ingested"`
	Delivered    uint64 `json:"events_delivered"`     // by every uplink
	DeadLettered uint64 `json:"events_dead_lettered"` // by uplinks and rules
	Refused      uint64 `json:"events_refused"`       // the buffer had no room
	Dropped      uint64 `json:"events_dropped"`       // unmatched topic, invalid, by a rule, a removed uplink's backlog
}

// uplinkStatus is one uplink in /status and /v1/uplinks.
type uplinkStatus struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Mode string `json:"mode"`
	URL  string `json:"url"` // redacted: no credentials or query values
	Up   bool   `json:"up"`
	// State is idle, delivering or failing (uplink.Health).
	State               string     `json:"state"`
	LastSuccess         *time.Time `json:"last_success"` // null: none since start
	LastFailure         *time.Time `json:"last_failure"`
	LastError           string     `json:"last_error,omitempty"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	Delivered           uint64     `json:"delivered"`
	DeadLettered        uint64     `json:"dead_lettered"`
	// Backlog counts the events waiting in the uplink's queue.
	Backlog      int64 `json:"backlog"`
	BacklogBytes int64 `json:"backlog_bytes"`
	// OldestAge is how long the oldest event not yet delivered has waited
	// (the first of the batch in hand), 0 when none is in hand.
	OldestAge float64 `json:"oldest_age_seconds"`
	// DeadLetterQueue is where the events it refuses go.
	DeadLetterQueue string `json:"dead_letter_queue"`
	// Removed: the configuration no longer has this uplink, but its queue
	// still holds events (state "removed"): replay them to another uplink
	// or purge them with `edgegate buffer`, or add the uplink again.
	Removed bool `json:"removed,omitempty"`
}

// stateRemoved is the state of an uplink that was removed with a backlog.
const stateRemoved = "removed"

type ruleStatus struct {
	Name        string `json:"name"`
	Evaluations uint64 `json:"evaluations"`
	Matches     uint64 `json:"matches"`
	Errors      uint64 `json:"errors"`
}

// status gathers /status, listing at most maxClients clients (all when
// negative).
func (g *Gateway) status(maxClients int) status {
	now := time.Now()
	l := g.live.Load()
	why := g.notReady()
	st := status{
		GatewayID: g.cfg.GatewayID,
		Version:   g.version,
		StartedAt: g.started.UTC(),
		Now:       now.UTC(),
		Ready:     len(why) == 0,
		NotReady:  why,
		Config:    g.configStatus(l),
		Clients:   g.broker.Clients(),
		Buffer:    g.bufferStats(),
		Counters: counters{
			Ingested:     g.ingested.Get(),
			DeadLettered: g.ruleDeadLettered.Get(),
			Refused:      g.overload.Get() + g.noBuffer.Get(),
			Dropped:      g.unmatched.Get() + g.rejected.Get() + g.ruleDropped.Get() + g.removedDropped.Get(),
		},
		ClientList: []clientStatus{},
		Rules:      []ruleStatus{},
	}
	for _, c := range g.broker.ClientList() {
		if maxClients >= 0 && len(st.ClientList) == maxClients {
			break
		}
		st.ClientList = append(st.ClientList, clientStatus{
			ClientID: c.ClientID, Username: c.Username, Auth: c.AuthMethod, Listener: c.Listener,
			RemoteAddr: c.RemoteAddr, ProtocolVersion: c.ProtocolVersion, ConnectedSince: c.ConnectedSince.UTC(),
			FairShareDelayed: c.FairShareDelayed,
		})
	}
	for name, q := range st.Buffer.Queues {
		if strings.HasPrefix(name, "deadletter.") {
			st.DeadLetters += q.Records
		}
	}
	st.Uplinks = g.uplinkStatuses(st.Buffer, now)
	for _, u := range st.Uplinks {
		st.Counters.Delivered += u.Delivered
		st.Counters.DeadLettered += u.DeadLettered
	}
	for _, r := range l.rules.Stats() {
		st.Rules = append(st.Rules, ruleStatus{Name: r.Name, Evaluations: r.Evaluations, Matches: r.Matches, Errors: r.Errors})
	}
	st.Config.Pull, st.Config.MQTT = g.channelStatus()
	return st
}

// uplinkStatuses reports every uplink's health, backlog (from bs) and
// oldest age at now.
func (g *Gateway) uplinkStatuses(bs buffer.Stats, now time.Time) []uplinkStatus {
	running := g.uplinks.Load()
	out := make([]uplinkStatus, 0, len(running.list))
	for _, f := range running.list {
		r := f.cfg.Redacted()
		h := f.delivery.Health()
		q := bs.Queues[queueName(f.cfg.Name)]
		u := uplinkStatus{
			Name: r.Name, Type: r.Type(), Mode: r.Mode(), URL: r.URL(), Up: h.State != uplink.StateFailing,
			State: h.State, LastSuccess: timeOrNil(h.LastSuccess), LastFailure: timeOrNil(h.LastFailure),
			LastError: h.LastError, ConsecutiveFailures: h.ConsecutiveFailures,
			Delivered: h.Delivered, DeadLettered: f.deadLetters.Get(),
			Backlog: q.Records, BacklogBytes: q.Bytes, DeadLetterQueue: f.deadLetter,
		}
		u.OldestAge = f.oldestAge(now)
		out = append(out, u)
	}
	names := make([]string, 0, len(bs.Queues))
	for name, q := range bs.Queues {
		if q.Records > 0 {
			names = append(names, name)
		}
	}
	for _, name := range removedUplinks(names, running) {
		q := bs.Queues[queueName(name)]
		out = append(out, uplinkStatus{
			Name: name, State: stateRemoved, Removed: true,
			Backlog: q.Records, BacklogBytes: q.Bytes, DeadLetterQueue: deadLetterName(name),
		})
	}
	return out
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// configStatus is the configuration part of /status.
func (g *Gateway) configStatus(l *live) configStatus {
	c := configStatus{Hash: l.configHash, LoadedAt: l.loadedAt.UTC(), LastReloadOK: g.lastReloadOK.Load()}
	if a := g.running.Load(); a != nil {
		c.Version, c.Source = a.entry.Version, a.entry.Source
	}
	return c
}
