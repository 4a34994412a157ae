package gateway

import (
	"path/filepath"
	"time"

	"github.com/edgegate/edgegate/configchannel"
	"github.com/edgegate/edgegate/internal/yamlconf"
)

// RemoteConfig is the remote_config section: how configurations applied
// while running (pushed to the admin API, pulled, received over MQTT) are
// kept and watched.
type RemoteConfig struct {
	// History is how many applied configurations are kept on disk, in
	// config/history beside the buffer's directory (at least 2).
	History int `yaml:"history"`
	// HealthWindow is how long the gateway watches its health after a
	// remote apply and rolls back a configuration that made it worse. 0
	// disables automatic rollback.
	HealthWindow time.Duration `yaml:"health_window"`
	// Events reports every apply, rejection and rollback as a CloudEvent
	// (io.edgegate.config.applied|rejected|rolledback) through every
	// uplink.
	Events bool `yaml:"events"`
	// PublicKeys are ed25519 public keys, each the line of a NAME.pub file
	// made by edgegate keygen. When any key is set (here or in
	// public_key_files), every configuration but the local file must carry
	// a valid signature by one of them and a newer version
	// (configsign; signatures.go).
	PublicKeys []string `yaml:"public_keys"`
	// PublicKeyFiles are NAME.pub files (relative to the configuration
	// file), read like public_keys.
	PublicKeyFiles []string `yaml:"public_key_files"`
	// Pull polls a URL for the configuration: no inbound connection needed
	// (configchannel; channels.go). Changes need a restart.
	Pull configchannel.PullConfig `yaml:"pull"`
	// MQTT receives configurations on a topic of an MQTT uplink's own
	// connection and answers on a status topic. Changes need a restart.
	MQTT configchannel.MQTTConfig `yaml:"mqtt"`
}

// DefaultRemoteConfig is the remote_config section's defaults.
func DefaultRemoteConfig() RemoteConfig {
	return RemoteConfig{History: 10, HealthWindow: 60 * time.Second, Events: true,
		Pull: configchannel.DefaultPullConfig(), MQTT: configchannel.DefaultMQTTConfig()}
}

// validate checks the section; paths are relative to it.
func (r RemoteConfig) validate() error {
	var errs yamlconf.List
	if r.History < 2 || r.History > 1000 {
		errs.Add(yamlconf.Key("history"), "must be 2 to 1000, got %d", r.History)
	}
	if r.HealthWindow < 0 {
		errs.Add(yamlconf.Key("health_window"), "must be ≥ 0 (0 disables automatic rollback)")
	}
	errs.Nest(yamlconf.Key("pull"), r.Pull.Validate())
	errs.Nest(yamlconf.Key("mqtt"), r.MQTT.Validate())
	return errs.Err()
}

// stateDir is where applied configurations are kept: config/ next to the
// buffer's directory (restart-only, so it cannot move under a running
// gateway).
func (c Config) stateDir() string {
	return filepath.Join(filepath.Dir(filepath.Clean(c.Buffer.Dir)), "config")
}
