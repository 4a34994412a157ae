package rules

import (
	"fmt"
	"time"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// staleAction is a compiled stale action.
type staleAction struct {
	site  string
	after time.Duration
	emit  emitAction
}

// stale compiles a stale action; idx numbers its site.
func (c *compiler) stale(p yamlconf.Path, idx int, s StaleSpec, uplinks []string) *staleAction {
	out := &staleAction{after: s.After}
	if s.After < time.Second {
		c.errs.Add(p.Key("after"), "must be at least 1s")
	}
	out.emit = *c.emit(p.Key("emit"), s.Emit, uplinks, StaleEnv{})
	out.site = fmt.Sprintf("stale#%d", idx)
	c.sites[out.site] = &siteInfo{stale: out}
	return out
}

// staleState is the per-key state of a stale action.
type staleState struct {
	last     time.Time
	data     any
	reported bool
}

// touchStale records that key matched the rule now, with data.
func (rl *rule) touchStale(a *staleAction, key string, data any, now time.Time) {
	rl.state.update(stateKey{site: a.site, key: key}, now, func(e *entry, _ bool) {
		if e.stale == nil {
			e.stale = &staleState{}
		}
		e.stale.last, e.stale.data, e.stale.reported = now, data, false
	})
}

// staleReport is a key that went stale, found by Tick.
type staleReport struct {
	a    *staleAction
	key  string
	last time.Time
	data any
}

// emitStale appends the event of a stale report to out.
func (s *Set) emitStale(r *runner, rl *rule, sr staleReport, now time.Time, gw string, out []Emitted) []Emitted {
	senv := StaleEnv{Key: sr.key, LastSeen: sr.last.UTC(), SilentFor: now.Sub(sr.last).Seconds(),
		Data: sr.data, Rule: rl.name, GatewayID: gw}
	em, err := s.buildEmit(r, &sr.a.emit, rl.name, senv, sr.key, now, gw)
	if err != nil {
		rl.stats.errors.Add(1)
		return out
	}
	if sr.a.emit.data == nil {
		em.Event.Data = map[string]any{
			"key": sr.key, "last_seen": senv.LastSeen.Format(time.RFC3339Nano), "silent_for": senv.SilentFor,
		}
		em.Event.DataContentType = "application/json"
	}
	return append(out, em)
}
