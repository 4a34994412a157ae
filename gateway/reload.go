package gateway

import (
	"reflect"
	"slices"
	"time"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// ReloadFile loads path as a start does (LoadFile: decoded, checked and
// compiled once) and applies what can change while running. Nothing
// changes unless everything is valid; a field that needs a restart is an
// error naming it (file:line:col: mqtt: change requires restart), and the
// running configuration stays. SIGHUP and the admin endpoint both come
// here.
func (g *Gateway) ReloadFile(path string) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	err := g.reloadFile(path)
	g.lastReloadOK.Store(err == nil)
	if err != nil {
		g.reloadFailures.Inc()
		g.log.Error("config reload failed: keeping the running configuration", "config", path, "err", err)
		return err
	}
	g.lastReloadTime.Store(time.Now().Unix())
	return nil
}

func (g *Gateway) reloadFile(path string) error {
	c, err := LoadFile(path)
	if err != nil {
		return err
	}
	cfg := c.Config
	old := g.current()
	if err := restartOnly(old, cfg); err != nil {
		return c.locate(err)
	}
	auth := g.adminAuth.Load()
	if !slices.Equal(old.Admin.Tokens, cfg.Admin.Tokens) {
		if auth, err = newAdminAuth(cfg.Admin.Tokens, g.verifyToken, g.log.With("component", "admin")); err != nil {
			return err
		}
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
	g.log.Info("config reloaded", "config", path)
	return nil
}

// restartOnly names every changed field that cannot be applied live. The
// auth section (and its users file) is not one of them.
func restartOnly(old, cfg Config) error {
	var errs yamlconf.List
	check := func(at yamlconf.Path, a, b any) {
		if !reflect.DeepEqual(a, b) {
			errs.Add(at, "change requires restart")
		}
	}
	check(yamlconf.Key("gateway_id"), old.GatewayID, cfg.GatewayID)
	check(yamlconf.Key("log").Key("format"), old.Log.Format, cfg.Log.Format)
	// admin.tokens and admin.allow_unauthenticated change live.
	check(yamlconf.Key("admin").Key("listen"), old.Admin.Listen, cfg.Admin.Listen)
	check(yamlconf.Key("admin").Key("tls"), old.Admin.TLS, cfg.Admin.TLS)
	check(yamlconf.Key("mqtt"), old.MQTT, cfg.MQTT)
	check(yamlconf.Key("buffer"), old.Buffer, cfg.Buffer)
	check(yamlconf.Key("uplinks"), old.Uplinks, cfg.Uplinks)
	check(yamlconf.Key("memory_limit"), old.MemoryLimit, cfg.MemoryLimit)
	return errs.Err()
}
