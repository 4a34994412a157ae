package gateway

import (
	"context"
	"slices"
	"strings"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// applyConfig makes a compiled configuration the running one, all of it or
// nothing: a restart-only change is refused by name, and only then does
// anything change (live parts, device access, admin tokens, log level,
// uplinks). The caller holds reloadMu.
func (g *Gateway) applyConfig(ctx context.Context, c *Compiled, opts uplinkChange) error {
	cfg := c.Config
	old := g.current()
	if err := restartOnly(old, cfg); err != nil {
		return c.locate(err)
	}
	var err error
	auth := g.adminAuth.Load()
	if !slices.Equal(old.Admin.Tokens, cfg.Admin.Tokens) {
		if auth, err = newAdminAuth(cfg.Admin.Tokens, g.verifyToken, g.log.With("component", "admin")); err != nil {
			return err
		}
	}
	// The uplinks' senders are built before anything changes; the routes
	// (live) switch before the uplinks do, so no event is routed to an
	// uplink that is no longer running, and an added uplink's queue
	// fills from the moment it is routed to.
	plan, err := g.prepareUplinks(c.uplinks)
	if err != nil {
		if auth != g.adminAuth.Load() {
			auth.stop()
		}
		return err
	}
	g.apply(newLive(c))
	g.setAccess(c.access) // new connects and every check from now on; revoked clients are disconnected
	if prev := g.adminAuth.Swap(auth); prev != auth {
		prev.stop()
		if auth == nil {
			g.log.Warn("admin tokens removed: the admin API is open", "component", "admin", "listen", cfg.Admin.Listen)
		} else {
			g.log.Info("admin tokens changed", "component", "admin", "tokens", len(cfg.Admin.Tokens))
		}
	}
	g.level.Set(cfg.LogLevel())
	g.cfgPtr.Store(&cfg)
	if opts.Handoff <= 0 {
		opts.Handoff = cfg.ShutdownTimeout
	}
	plan.commit(ctx, opts)
	return nil
}

// restartOnlyFields are the parts of the configuration that cannot change
// while the gateway runs: a change of any field under them is refused,
// named by its full path. Everything else (log.level, admin.tokens and
// admin.allow_unauthenticated, auth, events, uplinks, rules,
// shutdown_timeout) changes live. README.md's table of what changes live
// is checked against this list.
var restartOnlyFields = []struct {
	path string
	get  func(Config) any
}{
	{"gateway_id", func(c Config) any { return c.GatewayID }},
	{"log.format", func(c Config) any { return c.Log.Format }},
	{"admin.listen", func(c Config) any { return c.Admin.Listen }},
	{"admin.tls", func(c Config) any { return c.Admin.TLS }},
	{"mqtt", func(c Config) any { return c.MQTT }},
	{"buffer", func(c Config) any { return c.Buffer }},
	{"memory_limit", func(c Config) any { return c.MemoryLimit }},
	// The config channels start with Run (channels.go).
	{"remote_config.pull", func(c Config) any { return c.RemoteConfig.Pull }},
	{"remote_config.mqtt", func(c Config) any { return c.RemoteConfig.MQTT }},
}

// restartOnly names every changed field that cannot be applied live, down
// to the leaf: mqtt.listeners[1].address, not mqtt.
func restartOnly(old, cfg Config) error {
	var errs yamlconf.List
	for _, f := range restartOnlyFields {
		at := yamlconf.Path{}
		for _, k := range strings.Split(f.path, ".") {
			at = at.Key(k)
		}
		for _, p := range yamlconf.Diff(f.get(old), f.get(cfg)) {
			errs.Add(at.Join(p), "change requires restart")
		}
	}
	return errs.Err()
}
