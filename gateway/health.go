package gateway

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/edgegate/edgegate/internal/configstore"
	"github.com/edgegate/edgegate/uplink"
)

// healthWatch watches the gateway for remote_config.health_window after a
// remote apply and rolls back a configuration that made things worse. One
// watch at a time: a newer apply ends the one before.
type healthWatch struct {
	mu     sync.Mutex
	gen    uint64
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ctx    context.Context // Run's; nil before Run
}

// healthSample is what the health window compares.
type healthSample struct {
	at         time.Time
	clients    int
	ruleErrors uint64
	uplinks    map[string]uplink.Health
}

func (g *Gateway) sampleHealth() healthSample {
	s := healthSample{at: time.Now(), uplinks: map[string]uplink.Health{}}
	if g.broker != nil {
		s.clients = g.broker.Clients()
	}
	for _, r := range g.live.Load().rules.Stats() {
		s.ruleErrors += r.Errors
	}
	for _, f := range g.uplinks.Load().list {
		s.uplinks[f.cfg.Name] = f.delivery.Health()
	}
	return s
}

// Thresholds of the health window.
const (
	// ruleErrorStorm is the rule error rate (per second) that is a storm
	// when it is also ruleErrorFactor times the rate before.
	ruleErrorStorm  = 10
	ruleErrorFactor = 10
	// failingSends is how many sends in a row an uplink that delivered
	// before must fail, with none succeeding since the apply.
	failingSends = 3
)

// unhealthy compares now with before (taken when the configuration was
// applied; the rule error rate before is errorsBefore per second) and says
// what got worse, or "".
func unhealthy(before, now healthSample, errorsBefore float64) string {
	for name, h := range now.uplinks {
		b, ok := before.uplinks[name]
		if !ok || b.State == uplink.StateFailing {
			continue
		}
		if h.State == uplink.StateFailing && h.ConsecutiveFailures >= failingSends && !h.LastSuccess.After(before.at) {
			return fmt.Sprintf("uplink %s fails every send since the change (%d in a row): %s", name, h.ConsecutiveFailures, h.LastError)
		}
	}
	if el := now.at.Sub(before.at).Seconds(); el >= 1 && now.ruleErrors >= before.ruleErrors {
		rate := float64(now.ruleErrors-before.ruleErrors) / el
		if rate > ruleErrorStorm && rate > ruleErrorFactor*errorsBefore {
			return fmt.Sprintf("rule errors at %.0f/s since the change (%.1f/s before)", rate, errorsBefore)
		}
	}
	if lost := before.clients - now.clients; lost >= 2 && 2*lost > before.clients {
		return fmt.Sprintf("connected devices fell from %d to %d since the change", before.clients, now.clients)
	}
	return ""
}

// watchHealth starts the health window of the configuration res, applied
// over prev when the gateway was as before says; called with reloadMu
// held.
func (g *Gateway) watchHealth(prev *appliedConfig, res ApplyResult, before healthSample) {
	window := g.current().RemoteConfig.HealthWindow
	w := &g.health
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cancel != nil {
		w.cancel()
		w.cancel = nil
	}
	w.gen++
	if window <= 0 || !prev.recorded {
		return
	}
	parent := w.ctx
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, window)
	w.cancel = cancel
	gen := w.gen
	var errorsBefore float64
	if age := before.at.Sub(g.appliedAt(prev)).Seconds(); age >= 1 {
		errorsBefore = float64(before.ruleErrors) / age
	}
	// Rule errors count from now, in the new rule set (whose rules kept by
	// name carry their counters over).
	before.at, before.ruleErrors = time.Now(), g.sampleHealth().ruleErrors
	tick := min(time.Second, max(window/20, 10*time.Millisecond))
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer cancel()
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			why := unhealthy(before, g.sampleHealth(), errorsBefore)
			if why == "" {
				continue
			}
			g.autoRollback(ctx, gen, prev.entry, res, why)
			return
		}
	}()
}

// appliedAt is when the configuration before a change was applied.
func (g *Gateway) appliedAt(prev *appliedConfig) time.Time {
	if !prev.entry.AppliedAt.IsZero() {
		return prev.entry.AppliedAt
	}
	return g.started
}

// autoRollback goes back to target unless another change came first, and
// marks the bad configuration so pull and MQTT do not apply it again.
func (g *Gateway) autoRollback(ctx context.Context, gen uint64, target configstore.Entry, bad ApplyResult, why string) {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	g.health.mu.Lock()
	current := g.health.gen == gen
	g.health.mu.Unlock()
	if !current || ctx.Err() != nil || g.running.Load().entry.Hash != bad.Hash {
		return
	}
	reason := fmt.Sprintf("health window: %s", why)
	g.log.Warn("config made the gateway unhealthy: rolling back", "component", "config",
		"version", bad.Version, "hash", bad.Hash, "to_version", target.Version, "reason", why)
	if err := g.configs.MarkRolledBack(bad.Hash, reason); err != nil {
		g.log.Error("config rollback not recorded", "component", "config", "err", err)
	}
	if _, err := g.rollbackLocked(context.WithoutCancel(ctx), target.Version, reason); err != nil {
		g.log.Error("config rollback failed", "component", "config", "to_version", target.Version, "err", err)
	}
}

// startHealth lets health windows live as long as Run; the returned stop
// ends the current one and waits for it.
func (g *Gateway) startHealth(ctx context.Context) (stop func()) {
	w := &g.health
	w.mu.Lock()
	w.ctx = ctx
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		if w.cancel != nil {
			w.cancel()
		}
		w.gen++
		w.mu.Unlock()
		w.wg.Wait()
	}
}

// Rollback applies a kept configuration again (Source "rollback"): version,
// or, when 0, the newest kept one before the running configuration that
// was not rolled back itself.
func (g *Gateway) Rollback(ctx context.Context, version int64, reason string) (ApplyResult, error) {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	return g.rollbackLocked(ctx, version, reason)
}

func (g *Gateway) rollbackLocked(ctx context.Context, version int64, reason string) (ApplyResult, error) {
	running := g.running.Load().entry
	hist, err := g.configs.History()
	if err != nil {
		return ApplyResult{}, refuse(RefusedNoHistory, fmt.Errorf("config history: %w", err))
	}
	var target *configstore.Entry
	for i, e := range hist {
		if version == 0 && e.Hash != running.Hash && e.RolledBack == "" && e.AppliedAt.Before(running.AppliedAt.Add(time.Nanosecond)) ||
			version != 0 && e.Version == version {
			target = &hist[i]
			break
		}
	}
	if target == nil {
		var kept []int64
		for _, e := range hist {
			kept = append(kept, e.Version)
		}
		what := fmt.Sprintf("version %d is not kept", version)
		if version == 0 {
			what = "no earlier configuration is kept"
		}
		return ApplyResult{}, refuse(RefusedNoHistory, fmt.Errorf("rollback: %s (kept: %v)", what, kept))
	}
	doc, sig, err := g.configs.Read(*target)
	if err != nil {
		return ApplyResult{}, refuse(RefusedNoHistory, fmt.Errorf("rollback to version %d: %w", target.Version, err))
	}
	if reason == "" {
		reason = "requested"
	}
	return g.applyLocked(ctx, ConfigUpdate{
		Source: SourceRollback, Origin: fmt.Sprintf("history v%d", target.Version),
		Data: doc, Signature: sig, Force: true, restore: target, reason: reason,
	})
}
