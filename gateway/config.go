package gateway

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/edgegate/edgegate/access"
	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/configsign"
	"github.com/edgegate/edgegate/internal/yamlconf"
	"github.com/edgegate/edgegate/mqtt"
	"github.com/edgegate/edgegate/overload"
	"github.com/edgegate/edgegate/rules"
	"github.com/edgegate/edgegate/uplink"
)

// Config is the whole edgegate configuration file. Each section belongs to
// the package that uses it; Config only composes them.
type Config struct {
	// GatewayID names this gateway in its events ({gateway_id} in sources
	// and topics), in the uplinks' MQTT client ids and in /status: 1-64
	// letters, digits, '.', '_' or '-'. Default: the host name.
	GatewayID string `yaml:"gateway_id"`
	// Log sets the level and format of the log (standard error).
	Log LogConfig `yaml:"log"`
	// Admin is the HTTP endpoint for probes, metrics, the status page,
	// reloads and the buffer tools.
	Admin AdminConfig `yaml:"admin"`
	// MQTT is the broker devices connect to: its listeners and limits.
	MQTT mqtt.Config `yaml:"mqtt"`
	// Auth decides which devices may connect and which topics each may
	// publish and subscribe to.
	Auth access.Config `yaml:"auth"`
	// Buffer is the durable disk store every event is written to (and
	// synced) before the device gets its PUBACK, and read from by the
	// uplinks.
	Buffer buffer.Config `yaml:"buffer"`
	// Events maps MQTT topics to CloudEvents attributes (source, type,
	// subject).
	Events cloudevent.Config `yaml:"events"`
	// Uplinks are the cloud endpoints events are sent to; at least one.
	// Each has its own queue in the buffer.
	Uplinks []uplink.Config `yaml:"uplinks"`
	// Overload decides what happens when devices publish faster than the
	// uplinks deliver while the uplinks work: publishers above their fair
	// share are slowed so that the backlog stops growing.
	Overload overload.Config `yaml:"overload"`
	// Rules filter, transform, route and derive events, and answer devices
	// locally; or name a file that holds them (rules: {file: rules.yaml}).
	Rules rules.Config `yaml:"rules"`
	// RemoteConfig keeps and watches the configurations applied while the
	// gateway runs (pushed to the admin API, pulled, or received over
	// MQTT): their history and the automatic rollback of one that makes
	// the gateway less healthy.
	RemoteConfig RemoteConfig `yaml:"remote_config"`
	// ShutdownTimeout bounds a graceful stop (SIGTERM or SIGINT): intake
	// stops, the uplinks get this long to deliver what is in flight, then
	// the buffer is closed; what is not delivered stays in the buffer for
	// the next start. A second signal stops at once.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MemoryLimit is the Go runtime's soft memory limit (GOMEMLIMIT); the
	// GOMEMLIMIT environment variable wins. 0 disables it.
	MemoryLimit yamlconf.ByteSize `yaml:"memory_limit"`
}

// LogConfig sets the log level and format.
type LogConfig struct {
	// Level is the least severe level logged: debug, info, warn or
	// error. Per-message logs are debug. A reload changes it.
	Level string `yaml:"level"`
	// Format is text (key=value lines) or json (one object per line).
	Format string `yaml:"format"`
}

// ConfigError is one problem of a configuration: file, line, column, the
// field's path and what is wrong. Every error of LoadFile and Parse is an
// errors.Join of them.
type ConfigError = yamlconf.Error

// DefaultConfig returns the configuration used for every key the file
// leaves out.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "edgegate"
	}
	buf := buffer.DefaultConfig()
	buf.Dir = "./data/buffer"
	return Config{
		GatewayID:       host,
		Log:             LogConfig{Level: "info", Format: "text"},
		Admin:           AdminConfig{Listen: "127.0.0.1:8080"},
		MQTT:            mqtt.DefaultConfig(),
		Auth:            access.DefaultConfig(),
		Buffer:          buf,
		Events:          cloudevent.DefaultConfig(),
		Overload:        overload.DefaultConfig(),
		RemoteConfig:    DefaultRemoteConfig(),
		ShutdownTimeout: 10 * time.Second,
		MemoryLimit:     40 << 20,
	}
}

// Compiled is a configuration that passed every check, with the parts the
// gateway runs already built: the event mapper, the rule set and the
// uplinks as their senders take them. New and reloads take it, so a rule
// set is compiled once at start and once per reload. A Compiled is for one
// Gateway: its rule set carries state.
type Compiled struct {
	// Config is the configuration as decoded, defaults filled in.
	Config Config

	mapper  *cloudevent.Mapper
	rules   *rules.Set
	access  *access.Checker
	uplinks []uplink.Config    // with GatewayID and StateDir filled in
	doc     *yamlconf.Document // the file it was parsed from; nil from Compile
	// hash is the SHA-256 (hex) of the file's bytes followed by those of
	// the rules file it includes, if any; "" from Compile.
	hash string
	data []byte // the document; nil from Compile

	// applied is the remotely applied configuration this is (LoadStartup),
	// with localHash the hash of the local file then; nil for the local
	// file itself.
	applied   *appliedConfig
	localHash string

	keys []configsign.PublicKey // remote_config's public keys
}

// locate positions later problems of the configuration (a reload's
// restart-only changes) in the file it came from.
func (c *Compiled) locate(err error) error {
	if c.doc == nil {
		return err
	}
	return c.doc.Locate(err)
}

// Compile checks cfg completely and builds what the gateway runs. Every
// problem is a *ConfigError with its path from the file's root (LoadFile
// and Parse add file, line and column), joined with errors.Join. A
// relative auth.users_file or mqtt tls file is read from the working
// directory.
func Compile(cfg Config) (*Compiled, error) { return compile(cfg, "") }

// compile is Compile with relative files (auth.users_file, the mqtt
// listeners' tls files) read from dir.
func compile(cfg Config, dir string) (*Compiled, error) {
	var errs yamlconf.List
	cfg.MQTT.ResolveFiles(dir)
	cfg.validate(&errs)
	errs.Nest(yamlconf.Key("mqtt"), cfg.MQTT.Validate())
	checker, err := compileAuth(cfg, dir)
	for _, e := range yamlconf.Problems(err) {
		if e.File != "" { // located in the users file
			errs = append(errs, e)
		} else {
			errs.Nest(yamlconf.Key("auth"), e)
		}
	}
	errs.Nest(yamlconf.Key("buffer"), cfg.Buffer.Validate())
	errs.Nest(yamlconf.Key("overload"), cfg.Overload.Validate())
	mapper, err := cloudevent.Compile(cfg.Events, cfg.GatewayID)
	errs.Nest(yamlconf.Key("events"), err)
	errs.Nest(yamlconf.Key("uplinks"), uplink.ValidateList(cfg.Uplinks))
	names := make([]string, len(cfg.Uplinks))
	for i, u := range cfg.Uplinks {
		names[i] = u.Name
	}
	set, err := rules.Compile(cfg.Rules, names, rules.WithGatewayID(cfg.GatewayID))
	errs.Nest(yamlconf.Key("rules"), err)
	keys, err := cfg.RemoteConfig.publicKeys(dir)
	errs.Nest(yamlconf.Key("remote_config"), err)
	cfg.RemoteConfig.Pull.ResolveFiles(dir)
	errs.Nest(yamlconf.Key("remote_config").Key("pull"), cfg.RemoteConfig.Pull.CheckFiles())
	errs.Nest(yamlconf.Key("remote_config").Key("mqtt").Key("uplink"), cfg.checkConfigUplink())
	if len(errs) > 0 {
		return nil, errs.Err()
	}
	c := &Compiled{Config: cfg, mapper: mapper, rules: set, access: checker, keys: keys}
	for _, u := range cfg.Uplinks {
		u.GatewayID = cfg.GatewayID
		if u.MQTT != nil && u.MQTT.StateDir == "" {
			m := *u.MQTT
			m.StateDir = filepath.Join(filepath.Dir(cfg.Buffer.Dir), "uplinks", u.Name)
			u.MQTT = &m
		}
		c.uplinks = append(c.uplinks, u)
	}
	return c, nil
}

var gatewayIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// validate checks the gateway's own keys.
func (c Config) validate(errs *yamlconf.List) {
	if !gatewayIDPattern.MatchString(c.GatewayID) {
		errs.Add(yamlconf.Key("gateway_id"), "%q must be 1-64 letters, digits, '.', '_' or '-'", c.GatewayID)
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		errs.Add(yamlconf.Key("log").Key("level"), "%v", err)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		errs.Add(yamlconf.Key("log").Key("format"), "must be text or json, got %q", c.Log.Format)
	}
	errs.Nest(yamlconf.Key("admin"), c.Admin.validate())
	errs.Nest(yamlconf.Key("remote_config"), c.RemoteConfig.validate())
	if c.MemoryLimit < 0 {
		errs.Add(yamlconf.Key("memory_limit"), "must be ≥ 0")
	}
	if c.ShutdownTimeout <= 0 {
		errs.Add(yamlconf.Key("shutdown_timeout"), "must be > 0")
	}
}

// LogLevel is the configured log level (info when invalid; Compile reports it).
func (c Config) LogLevel() slog.Level {
	l, _ := parseLevel(c.Log.Level)
	return l
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("must be debug, info, warn or error, got %q", s)
	}
	return l, nil
}
