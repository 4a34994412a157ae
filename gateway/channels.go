package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/edgegate/edgegate/configchannel"
	"github.com/edgegate/edgegate/uplink"
)

// checkConfigUplink checks that remote_config.mqtt.uplink names an mqtt
// uplink; the error is relative to that key.
func (c Config) checkConfigUplink() error {
	name := c.RemoteConfig.MQTT.Uplink
	if name == "" {
		return nil
	}
	for _, u := range c.Uplinks {
		if u.Name == name {
			if u.MQTT == nil {
				return fmt.Errorf("uplink %q is not an mqtt uplink", name)
			}
			return nil
		}
	}
	return fmt.Errorf("no uplink named %q", name)
}

// channels are the running config channels (remote_config.pull and
// .mqtt), for /status; nil while off.
type channels struct {
	pull atomic.Pointer[configchannel.Puller]
	mqtt atomic.Pointer[configchannel.MQTTChannel]
	conn atomic.Pointer[uplinkConn]
}

// channelStatus is the config channels' part of /status.
func (g *Gateway) channelStatus() (pull *configchannel.PullStatus, mqtt *configchannel.MQTTStatus) {
	if p := g.chans.pull.Load(); p != nil {
		s := p.Status()
		pull = &s
	}
	if m := g.chans.mqtt.Load(); m != nil {
		s := m.Status()
		mqtt = &s
	}
	return pull, mqtt
}

// applyFromChannel is the configchannel.ApplyFunc of the gateway: Apply,
// with its refusal reason passed on for the MQTT status.
func (g *Gateway) applyFromChannel(ctx context.Context, u configchannel.Update) (configchannel.Result, error) {
	source := SourcePull
	if u.Source == configchannel.SourceMQTT {
		source = SourceMQTT
	}
	res, err := g.Apply(ctx, ConfigUpdate{Source: source, Origin: u.Origin, Data: u.Data, Signature: u.Signature})
	if err != nil {
		var ae *ApplyError
		if errors.As(err, &ae) {
			err = &configchannel.Rejection{Reason: ae.Reason, Err: err}
		}
		return configchannel.Result{Version: res.Version, Hash: res.Hash}, err
	}
	return configchannel.Result{Applied: res.Applied, Unchanged: res.Unchanged, Version: res.Version, Hash: res.Hash}, nil
}

// startChannels starts the pull and MQTT config channels of the
// configuration Run starts with (they are restart-only), and warns once
// when public keys are configured but that configuration is unsigned. The
// returned stop waits for them.
func (g *Gateway) startChannels(ctx context.Context) (stop func()) {
	rc := g.current().RemoteConfig
	if len(g.live.Load().keys) > 0 {
		if prev := g.running.Load(); prev != nil && !prev.entry.Signed {
			g.log.Warn("public keys are configured but the configuration this gateway starts with is unsigned: only the local file is accepted so",
				"component", "config", "source", prev.entry.Source)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if rc.Pull.URL != "" {
		p, err := configchannel.NewPuller(rc.Pull, g.applyFromChannel, g.log.With("component", "config_pull"), g.metrics)
		if err != nil {
			g.log.Error("config pull disabled", "component", "config_pull", "err", err)
		} else {
			g.chans.pull.Store(p)
			wg.Go(func() { p.Run(ctx) })
		}
	}
	if name := rc.MQTT.Uplink; name != "" {
		conn := &uplinkConn{g: g, name: name}
		m := configchannel.NewMQTT(rc.MQTT, g.current().GatewayID, conn, g.applyFromChannel, g.log.With("component", "config_mqtt", "uplink", name), g.metrics)
		g.chans.mqtt.Store(m)
		g.chans.conn.Store(conn)
		wg.Go(func() { m.Run(ctx) })
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// uplinkConn is the MQTT config channel's connection: the sender of the
// named uplink as it runs now (a changed uplink gets a new sender, see
// followUplinks).
type uplinkConn struct {
	g    *Gateway
	name string

	mu         sync.Mutex
	subscribed uplink.Subscriber // where the last Subscribe succeeded
}

// current is the uplink's running sender as a Subscriber.
func (c *uplinkConn) current() (uplink.Subscriber, error) {
	f := c.g.uplinks.Load().find(c.name)
	if f == nil {
		return nil, fmt.Errorf("uplink %q is not running", c.name)
	}
	sub, ok := f.sender.(uplink.Subscriber)
	if !ok {
		return nil, fmt.Errorf("uplink %q cannot subscribe: not an mqtt uplink", c.name)
	}
	return sub, nil
}

func (c *uplinkConn) Subscribe(ctx context.Context, topic string, h func([]byte, bool)) error {
	sub, err := c.current()
	if err != nil {
		return err
	}
	if err := sub.Subscribe(ctx, topic, h); err != nil {
		return err
	}
	c.mu.Lock()
	c.subscribed = sub
	c.mu.Unlock()
	return nil
}

func (c *uplinkConn) Publish(ctx context.Context, topic string, payload []byte) error {
	sub, err := c.current()
	if err != nil {
		return err
	}
	return sub.Publish(ctx, topic, payload)
}

// followUplinks makes the MQTT config channel subscribe on its uplink's
// new connection after the uplinks changed.
func (g *Gateway) followUplinks() {
	conn, m := g.chans.conn.Load(), g.chans.mqtt.Load()
	if conn == nil || m == nil {
		return
	}
	sub, err := conn.current()
	conn.mu.Lock()
	moved := err == nil && sub != conn.subscribed
	conn.mu.Unlock()
	if moved {
		m.Resubscribe()
	}
}
