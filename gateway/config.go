package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/gateway/mapping"
	"github.com/edgegate/edgegate/mqtt"
	"github.com/edgegate/edgegate/rules"
	"github.com/edgegate/edgegate/uplink"
)

// Config is the whole edgegate configuration file. Each section belongs to
// the package that uses it; Config only composes them.
type Config struct {
	GatewayID       string          `yaml:"gateway_id"`
	Log             LogConfig       `yaml:"log"`
	Admin           AdminConfig     `yaml:"admin"`
	MQTT            mqtt.Config     `yaml:"mqtt"`
	Buffer          buffer.Config   `yaml:"buffer"`
	Events          mapping.Config  `yaml:"events"`
	Uplinks         []uplink.Config `yaml:"uplinks"`
	Rules           rules.Config    `yaml:"rules"`
	ShutdownTimeout time.Duration   `yaml:"shutdown_timeout"`
	// MemoryLimit is the Go runtime's soft memory limit (GOMEMLIMIT); the
	// GOMEMLIMIT environment variable wins. 0 disables it.
	MemoryLimit buffer.ByteSize `yaml:"memory_limit"`
}

// LogConfig sets the log level and format.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
}

// AdminConfig is the admin HTTP endpoint: /healthz, /readyz, /metrics, /status.
type AdminConfig struct {
	Listen string `yaml:"listen"` // host:port, default ":8080"; "" disables it
}

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
		Admin:           AdminConfig{Listen: ":8080"},
		MQTT:            mqtt.DefaultConfig(),
		Buffer:          buf,
		Events:          mapping.DefaultConfig(),
		ShutdownTimeout: 10 * time.Second,
		MemoryLimit:     40 << 20,
	}
}

var gatewayIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
var uplinkNamePattern = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// Validate reports every problem, each as "field.path: problem".
func (c Config) Validate() error {
	var errs []error
	if !gatewayIDPattern.MatchString(c.GatewayID) {
		errs = append(errs, fmt.Errorf("gateway_id: %q must be 1-64 letters, digits, '.', '_' or '-'", c.GatewayID))
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		errs = append(errs, fmt.Errorf("log.level: %w", err))
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format: must be text or json, got %q", c.Log.Format))
	}
	if c.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
			errs = append(errs, fmt.Errorf("admin.listen: %q must be host:port", c.Admin.Listen))
		}
	}
	if c.MemoryLimit < 0 {
		errs = append(errs, errors.New("memory_limit: must be ≥ 0"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdown_timeout: must be > 0"))
	}
	errs = appendSection(errs, "mqtt.", c.MQTT.Validate())
	errs = appendSection(errs, "buffer.", c.Buffer.Validate())
	errs = appendSection(errs, "events.", c.Events.Validate())
	if len(c.Uplinks) == 0 {
		errs = append(errs, errors.New("uplinks: at least one uplink is required"))
	}
	seen := map[string]int{}
	for i, u := range c.Uplinks {
		prefix := fmt.Sprintf("uplinks[%d].", i)
		if j, dup := seen[u.Name]; dup && u.Name != "" {
			errs = append(errs, fmt.Errorf("%sname: %q is already used by uplinks[%d]", prefix, u.Name, j))
		}
		seen[u.Name] = i
		if u.Name != "" && !uplinkNamePattern.MatchString(u.Name) {
			errs = append(errs, fmt.Errorf("%sname: %q must be 1-64 of a-z, 0-9, '_' or '-'", prefix, u.Name))
		}
		errs = appendSection(errs, prefix, u.Validate())
	}
	if _, err := rules.Compile(c.Rules, c.uplinkNames(), rules.WithGatewayID(c.GatewayID)); err != nil {
		errs = appendSection(errs, "rules.", err)
	}
	for i, u := range c.Uplinks {
		if _, ok := seen[u.DeadLetter]; u.DeadLetter != "" && u.DeadLetter != u.Name && !ok {
			errs = append(errs, fmt.Errorf("uplinks[%d].dead_letter: no uplink is named %q", i, u.DeadLetter))
		}
	}
	return errors.Join(errs...)
}

func (c Config) uplinkNames() []string {
	names := make([]string, len(c.Uplinks))
	for i, u := range c.Uplinks {
		names[i] = u.Name
	}
	return names
}

// appendSection adds a section's errors with the section's path in front.
func appendSection(errs []error, prefix string, err error) []error {
	if err == nil {
		return errs
	}
	for _, e := range unjoin(err) {
		errs = append(errs, fmt.Errorf("%s%w", prefix, e))
	}
	return errs
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

// LogLevel is the configured log level (info when invalid; Validate reports it).
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

// ConfigError is one problem in a configuration file, with its position.
type ConfigError struct {
	File   string
	Line   int // 0 when unknown
	Column int
	Path   string // field path, e.g. uplinks[0].url
	Msg    string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// LoadFile reads, decodes and validates a configuration file. The error
// lists every problem found, each a *ConfigError naming file:line:col and
// the field.
func LoadFile(path string) (Config, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(path, data)
	return cfg, data, err
}

// Parse decodes and validates configuration bytes; name is used in errors.
func Parse(name string, data []byte) (Config, error) {
	cfg := DefaultConfig()
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return Config{}, errors.Join(yamlErrors(name, &root, err)...)
	}
	if len(root.Content) == 0 {
		return Config{}, &ConfigError{File: name, Msg: "file is empty"}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var out []error
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		out = yamlErrors(name, &root, err)
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return Config{}, errors.Join(out...)
		}
		// Type errors leave the rest decoded: validate it too, so every
		// problem is reported at once.
	}
	for i := range cfg.Uplinks {
		cfg.Uplinks[i].ApplyDefaults()
	}
	if err := cfg.Validate(); err != nil {
		for _, e := range unjoin(err) {
			out = append(out, positioned(name, &root, e.Error()))
		}
	}
	if len(out) > 0 {
		return Config{}, errors.Join(out...)
	}
	return cfg, nil
}

// positioned turns "field.path: problem" into a ConfigError located at the
// deepest node of the path that exists in the document.
func positioned(file string, root *yaml.Node, msg string) *ConfigError {
	path, problem, ok := strings.Cut(msg, ": ")
	if !ok || strings.ContainsAny(path, " \"") {
		return &ConfigError{File: file, Msg: msg}
	}
	ce := &ConfigError{File: file, Path: path, Msg: problem}
	if n := lookup(root, path); n != nil {
		ce.Line, ce.Column = n.Line, n.Column
	}
	return ce
}

// lookup follows a field path (a.b[2].c) from the document root and returns
// the deepest node found: the value node when the whole path exists, else
// the last parent that does.
func lookup(root *yaml.Node, path string) *yaml.Node {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	found := n
	for _, step := range splitPath(path) {
		next := child(n, step)
		if next == nil {
			return found
		}
		n, found = next, next
	}
	return found
}

func splitPath(path string) []string {
	var steps []string
	for _, f := range strings.Split(path, ".") {
		for f != "" {
			i := strings.IndexByte(f, '[')
			if i < 0 {
				steps = append(steps, f)
				break
			}
			if i > 0 {
				steps = append(steps, f[:i])
			}
			j := strings.IndexByte(f[i:], ']')
			if j < 0 {
				steps = append(steps, f[i:])
				break
			}
			steps = append(steps, f[i:i+j+1])
			f = f[i+j+1:]
		}
	}
	return steps
}

func child(n *yaml.Node, step string) *yaml.Node {
	if strings.HasPrefix(step, "[") {
		i, err := strconv.Atoi(strings.Trim(step, "[]"))
		if err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
			return nil
		}
		return n.Content[i]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == step {
			return n.Content[i+1]
		}
	}
	return nil
}

var yamlLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)
var unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type \S+$`)

// yamlErrors converts yaml.v3's errors ("line 5: field x not found in type
// …") into ConfigErrors with file, line, column and field path.
func yamlErrors(file string, root *yaml.Node, err error) []error {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var out []error
	for _, m := range msgs {
		ce := &ConfigError{File: file, Msg: m}
		if sm := yamlLineRE.FindStringSubmatch(m); sm != nil {
			ce.Line, _ = strconv.Atoi(sm[1])
			ce.Msg = sm[2]
			ce.Column = 1
			if fm := unknownFieldRE.FindStringSubmatch(sm[2]); fm != nil {
				ce.Msg = fmt.Sprintf("unknown field %q", fm[1])
				if path, key := findKey(root, ce.Line, fm[1], ""); key != nil {
					ce.Path, ce.Column = path, key.Column
				}
			} else if path, n := findLine(root, ce.Line, ""); n != nil {
				ce.Path, ce.Column = path, n.Column
				ce.Msg = strings.Replace(ce.Msg, "cannot unmarshal !!", "cannot use ", 1)
			}
		}
		out = append(out, ce)
	}
	return out
}

// findKey finds the mapping key named key on line and returns its path.
func findKey(n *yaml.Node, line int, key, path string) (string, *yaml.Node) {
	if n == nil {
		return "", nil
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) > 0 {
			return findKey(n.Content[0], line, key, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := joinPath(path, k.Value)
			if k.Line == line && k.Value == key {
				return p, k
			}
			if p, found := findKey(n.Content[i+1], line, key, p); found != nil {
				return p, found
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if p, found := findKey(c, line, key, fmt.Sprintf("%s[%d]", path, i)); found != nil {
				return p, found
			}
		}
	}
	return "", nil
}

// findLine finds the value node on line and returns its path.
func findLine(n *yaml.Node, line int, path string) (string, *yaml.Node) {
	if n == nil {
		return "", nil
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) > 0 {
			return findLine(n.Content[0], line, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := joinPath(path, n.Content[i].Value)
			v := n.Content[i+1]
			if v.Line == line && (v.Kind == yaml.ScalarNode || v.Kind == yaml.AliasNode) {
				return p, v
			}
			if p, found := findLine(v, line, p); found != nil {
				return p, found
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if c.Line == line && c.Kind == yaml.ScalarNode {
				return p, c
			}
			if p, found := findLine(c, line, p); found != nil {
				return p, found
			}
		}
	}
	return "", nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
