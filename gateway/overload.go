package gateway

import (
	"context"
	"math"
	"time"

	"github.com/edgegate/edgegate/overload"
	"github.com/edgegate/edgegate/uplink"
)

// overloadEvery is how often the intake limit is recomputed
// (Gateway.overloadEvery; tests shorten it).
const overloadEvery = time.Second

// limitIntake samples the broker's intake and every uplink's backlog and
// deliveries each second, and hands the broker the intake limit the
// overload controller derives from them (see package overload), until ctx
// is done. The limit is logged when it is set and when it is lifted, and
// exported as edgegate_overload_intake_limit_per_second.
func (g *Gateway) limitIntake(ctx context.Context) error {
	var c overload.Controller
	t := time.NewTicker(g.overloadEvery)
	defer t.Stop()
	defer g.broker.LimitIntake(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			d := c.Step(g.current().Overload, g.overloadSample(now))
			share := g.broker.LimitIntake(d.Limit)
			g.intakeLimit.Store(math.Float64bits(d.Limit))
			switch {
			case d.Changed && d.Limit > 0:
				g.log.Warn("overload: an uplink delivers less than devices publish; publishers above their fair share are slowed",
					"uplink", d.Uplink, "delivered_per_second", math.Round(d.Drain), "backlog", d.Backlog,
					"intake_limit_per_second", math.Round(d.Limit), "fair_share_per_second", math.Round(share*10)/10)
			case d.Changed:
				g.log.Info("overload over: intake no longer limited")
			}
		}
	}
}

// overloadSample measures what the overload controller needs.
func (g *Gateway) overloadSample(now time.Time) overload.Sample {
	s := overload.Sample{At: now, Publishes: g.broker.Publishes()}
	buf := g.buffer()
	if buf == nil {
		return s
	}
	queues := buf.Stats().Queues
	for _, f := range g.uplinks.Load().list {
		h := f.delivery.Health()
		s.Uplinks = append(s.Uplinks, overload.Uplink{
			Name:        f.cfg.Name,
			Backlog:     queues[queueName(f.cfg.Name)].Records,
			Delivered:   h.Delivered,
			Failing:     h.State == uplink.StateFailing,
			LastFailure: h.LastFailure,
		})
	}
	return s
}
