package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/internal/configstore"
	"github.com/edgegate/edgegate/internal/metricname"
	"github.com/edgegate/edgegate/internal/yamlconf"
)

// The sources of a ConfigUpdate.
const (
	SourceFile     = "file"     // the local file: start, POST /-/reload
	SourceSIGHUP   = "sighup"   // the local file, on SIGHUP
	SourceAdmin    = "admin"    // PUT /v1/config
	SourcePull     = "pull"     // polled from a URL
	SourceMQTT     = "mqtt"     // the MQTT uplink's config topic
	SourceRollback = "rollback" // a configuration from the history, again
)

// ConfigUpdate is a configuration document from any source, for Apply.
type ConfigUpdate struct {
	Source string // one of the Source… constants
	// Origin is where it came from, for errors and reports: a path, a
	// URL, a topic, "push". Problems of the document are reported as
	// Origin:line:col: path: message.
	Origin    string
	Data      []byte // the YAML document, possibly with an embedded signature line
	Signature []byte // a detached signature, if any
	DryRun    bool   // validate and diff only
	// Force accepts a signed version older than the running one: only
	// from local sources (the CLI on the box, the file).
	Force bool
	// DropRemovedBacklog drops the queues of uplinks the update removes
	// (default: they stay on disk, see /v1/uplinks).
	DropRemovedBacklog bool

	// restore is the history entry a rollback applies again: it keeps its
	// version. reason says why (for the rolledback event).
	restore *configstore.Entry
	reason  string
}

// ApplyResult is what Apply did.
type ApplyResult struct {
	Version         int64  `json:"version"`
	Hash            string `json:"hash"`
	PreviousVersion int64  `json:"previous_version"`
	PreviousHash    string `json:"previous_hash"`
	Source          string `json:"source"`
	// Diff lists the paths of the keys that change (never their values).
	Diff []string `json:"diff"`
	// Applied is true when the configuration is now in effect; false for
	// a dry run and for a document equal to the running one (Unchanged).
	Applied   bool `json:"applied"`
	Unchanged bool `json:"unchanged,omitempty"`
	DryRun    bool `json:"dry_run,omitempty"`
	Signed    bool `json:"signed,omitempty"`
}

// Why Apply refused an update (ApplyError.Reason).
const (
	RefusedInvalid    = "invalid"     // does not parse, validate or compile; or needs a restart
	RefusedSignature  = "signature"   // missing or bad signature
	RefusedStale      = "stale"       // a signed version not newer than the running one
	RefusedRolledBack = "rolled_back" // rolled back before; pull and MQTT do not apply it again
	RefusedPersist    = "persist"     // the state directory could not be written
	RefusedUplinks    = "uplinks"     // the uplinks could not be changed
	RefusedNoHistory  = "no_history"  // a rollback to a version that is not kept
)

// ApplyError is Apply's error: why (one of the Refused… reasons) and the
// problems, every one (errors.Join of *ConfigError for a document that is
// not valid).
type ApplyError struct {
	Reason string
	Err    error
}

func (e *ApplyError) Error() string { return e.Err.Error() }
func (e *ApplyError) Unwrap() error { return e.Err }

func refuse(reason string, err error) error { return &ApplyError{Reason: reason, Err: err} }

// Verified is what a configVerifier found out about a document.
type Verified struct {
	Signed  bool
	Version int64 // the signed version; 0 when unsigned
}

// configVerifier checks the signature of a configuration document against
// the running configuration's public keys (remote_config). An error means
// the update must be refused: an *ApplyError with RefusedStale for a
// signed version not newer than the running one (409), any other error is
// RefusedSignature (403). It is called with the apply lock held, one call
// at a time.
type configVerifier interface {
	Verify(running Config, u ConfigUpdate) (Verified, error)
}

// appliedConfig is the configuration in effect: its history entry and
// document.
type appliedConfig struct {
	entry     configstore.Entry
	data, sig []byte
	recorded  bool // in the history on disk
}

// Apply is the one path of every configuration change: parse → verify the
// signature → validate and compile → restart-only check naming every
// field → diff → persist in the state directory → apply (rules, mappings,
// log level, device access, admin tokens) → report (a log line, the
// counter edgegate_config_applies_total{source,result} and an
// io.edgegate.config.* event through every uplink). If any step fails the
// running configuration stays and the error is an *ApplyError. A remote
// document equal to the running one is a success that changes nothing; the
// local file is applied again (the files it names, such as
// auth.users_file, may have changed). Applies run
// one at a time; Apply is safe while Run is active.
func (g *Gateway) Apply(ctx context.Context, u ConfigUpdate) (ApplyResult, error) {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	return g.applyLocked(ctx, u)
}

func (g *Gateway) applyLocked(ctx context.Context, u ConfigUpdate) (ApplyResult, error) {
	prev := g.running.Load()
	before := g.sampleHealth()
	res, c, err := g.prepare(u, prev)
	if err == nil && !u.DryRun && !res.Unchanged {
		prev, err = g.commit(ctx, u, c, &res, prev)
	}
	g.report(ctx, u, res, err)
	if err == nil && res.Applied && u.Source != SourceRollback && u.Source != SourceFile && u.Source != SourceSIGHUP {
		g.watchHealth(prev, res, before)
	}
	return res, err
}

// prepare takes every step that cannot change anything.
func (g *Gateway) prepare(u ConfigUpdate, prev *appliedConfig) (ApplyResult, *Compiled, error) {
	res := ApplyResult{Source: u.Source, PreviousVersion: prev.entry.Version, PreviousHash: prev.entry.Hash, DryRun: u.DryRun, Diff: []string{}}
	v, err := g.configVerifier.Verify(g.current(), u)
	if err != nil {
		if ae := (*ApplyError)(nil); !errors.As(err, &ae) {
			err = refuse(RefusedSignature, err)
		}
		return res, nil, err
	}
	res.Signed = v.Signed
	name := u.Origin
	if name == "" {
		name = u.Source
	}
	c, err := parse(name, g.configDir(), u.Data)
	if err != nil {
		return res, nil, refuse(RefusedInvalid, err)
	}
	res.Hash = c.hash
	local := u.Source == SourceFile || u.Source == SourceSIGHUP
	if c.hash == prev.entry.Hash && !local {
		res.Version, res.Unchanged = prev.entry.Version, true
		return res, c, nil
	}
	// A signed version not newer than the running one was refused by the
	// verifier (RefusedStale).
	if u.Source == SourcePull || u.Source == SourceMQTT {
		if why, _ := g.configs.RolledBack(c.hash); why != "" {
			return res, nil, refuse(RefusedRolledBack, fmt.Errorf("configuration %.12s was rolled back (%s): not applied again", c.hash, why))
		}
	}
	old := g.current()
	if err := restartOnly(old, c.Config); err != nil {
		return res, nil, refuse(RefusedInvalid, c.locate(err))
	}
	for _, p := range yamlconf.Diff(old, c.Config) {
		res.Diff = append(res.Diff, p.String())
	}
	switch {
	case c.hash == prev.entry.Hash:
		// The local file again: applied again, since the files it names
		// (auth.users_file, certificates) may have changed; same version.
		res.Version = prev.entry.Version
	case u.restore != nil:
		res.Version = u.restore.Version
	case v.Signed:
		res.Version = v.Version
	default:
		top, _ := g.configs.MaxVersion()
		res.Version = max(top, prev.entry.Version) + 1
	}
	return res, c, nil
}

// commit persists c and makes it current, and returns prev as recorded in
// the history. Everything that can fail comes before anything changes.
func (g *Gateway) commit(ctx context.Context, u ConfigUpdate, c *Compiled, res *ApplyResult, prev *appliedConfig) (*appliedConfig, error) {
	localHash := g.localHash
	if u.Source == SourceFile || u.Source == SourceSIGHUP {
		localHash = c.hash
	}
	g.configs.SetKeep(c.Config.RemoteConfig.History)
	if !prev.recorded {
		// The configuration before this one is kept too: it is what a
		// rollback goes back to.
		e, err := g.configs.Record(prev.entry, prev.data, prev.sig)
		if err != nil {
			return prev, refuse(RefusedPersist, fmt.Errorf("config state %s: %w", g.configs.Dir(), err))
		}
		prev = &appliedConfig{entry: e, data: prev.data, sig: prev.sig, recorded: true}
		g.running.Store(prev)
	}
	entry := configstore.Entry{Version: res.Version, Hash: c.hash, Signed: res.Signed, Source: u.Source, Origin: u.Origin, AppliedAt: time.Now().UTC()}
	entry, err := g.configs.Save(entry, u.Data, u.Signature, localHash)
	if err != nil {
		return prev, refuse(RefusedPersist, fmt.Errorf("config state %s: %w", g.configs.Dir(), err))
	}
	// Restart-only fields were checked by prepare; applyConfig checks
	// them again and builds the uplinks' senders before anything changes.
	if err := g.applyConfig(ctx, c, uplinkChange{DropRemovedBacklog: u.DropRemovedBacklog}); err != nil {
		if _, rerr := g.configs.Save(prev.entry, prev.data, prev.sig, g.localHash); rerr != nil {
			g.log.Error("config state: the previous configuration could not be made active again", "component", "config", "err", rerr)
		}
		return prev, refuse(RefusedUplinks, err)
	}
	g.running.Store(&appliedConfig{entry: entry, data: u.Data, sig: u.Signature, recorded: true})
	g.localHash = localHash
	res.Version, res.Applied = entry.Version, true
	return prev, nil
}

// report logs, counts and emits the outcome of an update.
func (g *Gateway) report(ctx context.Context, u ConfigUpdate, res ApplyResult, err error) {
	result := "applied"
	switch {
	case err != nil:
		result = "rejected"
	case res.DryRun:
		result = "dry_run"
	case res.Unchanged:
		result = "unchanged"
	}
	g.metrics.GetOrCreateCounter(metricname.With("edgegate_config_applies_total", "source", u.Source, "result", result)).Inc()
	log := g.log.With("component", "config", "source", u.Source, "origin", u.Origin)
	if res.DryRun {
		log.Info("config dry run", "hash", res.Hash, "changed", res.Diff, "err", err)
		return
	}
	if u.Source != SourceRollback {
		g.lastReloadOK.Store(err == nil)
	}
	change := cloudevent.ConfigChange{
		Version: res.Version, Hash: res.Hash, PreviousVersion: res.PreviousVersion, PreviousHash: res.PreviousHash,
		Source: u.Source, Origin: u.Origin, Diff: res.Diff,
	}
	switch {
	case err != nil:
		g.reloadFailures.Inc()
		log.Error("config rejected: keeping the running configuration", "hash", res.Hash, "err", err)
		var ae *ApplyError
		if errors.As(err, &ae) {
			change.Reason = ae.Reason
		}
		change.Errors = problemLines(err)
		g.emitConfigEvent(ctx, cloudevent.TypeConfigRejected, change)
	case res.Unchanged:
		log.Info("config unchanged: the document equals the running configuration", "version", res.Version, "hash", res.Hash)
		g.lastReloadTime.Store(time.Now().Unix())
	default:
		g.lastReloadTime.Store(time.Now().Unix())
		msg, typ := "config applied", cloudevent.TypeConfigApplied
		switch u.Source {
		case SourceFile, SourceSIGHUP:
			msg = "config reloaded"
		case SourceRollback:
			msg, typ = "config rolled back", cloudevent.TypeConfigRolledBack
			change.Reason = u.reason
		}
		log.Info(msg, "version", res.Version, "hash", res.Hash, "previous_version", res.PreviousVersion, "changed", res.Diff, "reason", u.reason)
		g.emitConfigEvent(ctx, typ, change)
	}
}

// problemLines is every problem of err, one line each.
func problemLines(err error) []string {
	if j, ok := errors.Unwrap(err).(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

// emitConfigEvent stores a config event for every uplink (past the rules:
// a rule must not hide what happened to the configuration).
func (g *Gateway) emitConfigEvent(ctx context.Context, typ string, c cloudevent.ConfigChange) {
	if !g.current().RemoteConfig.Events {
		return
	}
	log := g.log.With("component", "config", "type", typ)
	e, err := cloudevent.ConfigEvent(g.current().GatewayID, typ, c, time.Now())
	if err != nil {
		log.Error("config event not stored", "err", err)
		return
	}
	buf := g.buffer()
	if buf == nil {
		log.Warn("config event not stored: the buffer is unavailable")
		return
	}
	recs := routeRecords(nil, cloudevent.Encode(&e), nil, g.live.Load().routes)
	if len(recs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := buf.Append(ctx, recs, true); err != nil {
		if errors.Is(err, buffer.ErrFull) {
			g.overload.Inc()
		}
		log.Warn("config event not stored", "err", err)
		return
	}
	g.tail.Add(recs, time.Now())
}

// ReloadFile applies the local configuration file at path (Apply with
// Source "file"): POST /-/reload comes here, SIGHUP to ReloadSIGHUP.
// Nothing changes unless everything is valid; a field that needs a restart
// is an error naming it (file:line:col: mqtt.listeners[1].address: change
// requires restart). A removed uplink's backlog is kept (see
// uplinkChange).
func (g *Gateway) ReloadFile(path string) error {
	return g.reload(context.Background(), path, uplinkChange{})
}

// ReloadSIGHUP is ReloadFile on SIGHUP (Source "sighup").
func (g *Gateway) ReloadSIGHUP(path string) error {
	return g.reloadFrom(context.Background(), SourceSIGHUP, path, uplinkChange{})
}

// reload is ReloadFile with the choices a reload may make about the
// uplinks.
func (g *Gateway) reload(ctx context.Context, path string, opts uplinkChange) error {
	return g.reloadFrom(ctx, SourceFile, path, opts)
}

func (g *Gateway) reloadFrom(ctx context.Context, source, path string, opts uplinkChange) error {
	data, err := os.ReadFile(path)
	if err != nil {
		err = refuse(RefusedInvalid, fmt.Errorf("read config: %w", err))
		g.reloadMu.Lock()
		g.report(ctx, ConfigUpdate{Source: source, Origin: path}, ApplyResult{Source: source}, err)
		g.reloadMu.Unlock()
		return err
	}
	_, err = g.Apply(ctx, ConfigUpdate{Source: source, Origin: path, Data: data, DropRemovedBacklog: opts.DropRemovedBacklog})
	return err
}

// configDir is where relative paths of an applied document (rules.file,
// tls files) are read from: beside the local file.
func (g *Gateway) configDir() string {
	if g.configPath == "" {
		return "."
	}
	return filepath.Dir(g.configPath)
}

// startApplied sets what New knows of the configuration it starts with.
func (g *Gateway) startApplied(c *Compiled) {
	g.configs = configstore.New(c.Config.stateDir(), c.Config.RemoteConfig.History)
	g.configVerifier = &signatures{g: g}
	if c.applied != nil { // a remotely applied configuration (LoadStartup)
		g.running.Store(c.applied)
		g.localHash = c.localHash
		return
	}
	g.localHash = c.hash
	e := configstore.Entry{Hash: c.hash, Source: SourceFile, Origin: g.configPath, AppliedAt: time.Now().UTC()}
	recorded := false
	if hist, err := g.configs.History(); err == nil {
		for _, h := range hist {
			e.Version = max(e.Version, h.Version)
		}
		e.Version++
		for _, h := range hist {
			if h.Hash == c.hash {
				e, recorded = h, true
				break
			}
		}
	}
	g.running.Store(&appliedConfig{entry: e, data: c.data, recorded: recorded})
}

// LoadStartup loads the configuration a gateway starts with: the local
// file at path, unless the state directory (<dir of buffer.dir>/config)
// holds a configuration applied remotely while the local file was as it is
// now — then that one (logged "using remotely applied config vN from
// SOURCE"). A local file edited since wins (logged). A remote
// configuration that no longer loads is skipped with an error logged.
func LoadStartup(path string, log *slog.Logger) (*Compiled, error) {
	local, err := LoadFile(path)
	if err != nil {
		return nil, err
	}
	log = log.With("component", "config")
	store := configstore.New(local.Config.stateDir(), local.Config.RemoteConfig.History)
	a, ok, err := store.Active()
	switch {
	case err != nil:
		log.Warn("config state unreadable: using the local file", "dir", store.Dir(), "err", err)
		return local, nil
	case !ok || a.Hash == local.hash || a.Source == SourceFile || a.Source == SourceSIGHUP:
		return local, nil
	case a.LocalHash != local.hash:
		log.Info("the local config file changed since a remote config was applied: using the local file",
			"config", path, "remote_version", a.Version, "remote_source", a.Source)
		return local, nil
	}
	doc, sig, err := store.Read(a.Entry)
	var c *Compiled
	if err == nil {
		c, err = parse(fmt.Sprintf("%s (v%d from %s)", filepath.Join(store.Dir(), "history", a.File), a.Version, a.Source), filepath.Dir(path), doc)
	}
	if err == nil {
		err = restartOnly(local.Config, c.Config)
	}
	if err != nil {
		log.Error("remotely applied config cannot be used: using the local file", "version", a.Version, "err", err)
		return local, nil
	}
	c.applied = &appliedConfig{entry: a.Entry, data: doc, sig: sig, recorded: true}
	c.localHash = local.hash
	log.Info(fmt.Sprintf("using remotely applied config v%d from %s", a.Version, a.Source),
		"version", a.Version, "hash", a.Hash, "origin", a.Origin, "applied_at", a.AppliedAt)
	return c, nil
}
