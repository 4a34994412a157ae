package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/gateway/mapping"
	"github.com/edgegate/edgegate/internal/yamlconf"
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
	MemoryLimit yamlconf.ByteSize `yaml:"memory_limit"`
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
// the field. The returned bytes are the main file's.
//
// The rules section may live in its own file: `rules: {file: rules.yaml}`,
// the path relative to the directory of path (see Parse).
func LoadFile(path string) (Config, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(path, data)
	return cfg, data, err
}

// Parse decodes and validates configuration bytes; name is used in errors.
//
// When the rules section is `rules: {file: F}`, Parse reads F (relative to
// the directory of name) and decodes it, with unknown keys refused, as the
// section: max_keys, schemas, rules, tests. `file` cannot be combined with
// inline rules keys, and an included file cannot name another. A problem in
// the included file is reported with that file's name, line and column and
// a path from its root, as its reader sees it:
// `rules.yaml:12:11: rules[2].when: …` (inline, the same problem reads
// `edgegate.yaml:40:15: rules.rules[2].when: …`). A file that cannot be read
// is a problem of rules.file in the main file. Every problem of both files
// is reported at once.
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
	inc, errs := includeRules(name, &root, &cfg)
	out = append(out, errs...)
	if err := cfg.Validate(); err != nil {
		for _, e := range unjoin(err) {
			msg := e.Error()
			if rest, ok := inc.owns(msg); ok {
				out = append(out, positioned(inc.file, inc.root, rest))
				continue
			}
			out = append(out, positioned(name, &root, msg))
		}
	}
	if len(out) > 0 {
		// The main file's problems first, then the included file's.
		sort.SliceStable(out, func(i, j int) bool { return fileOf(out[i]) == name && fileOf(out[j]) != name })
		return Config{}, errors.Join(out...)
	}
	return cfg, nil
}

func fileOf(err error) string {
	if ce, ok := err.(*ConfigError); ok {
		return ce.File
	}
	return ""
}

// maxRulesFileBytes bounds an included rules file.
const maxRulesFileBytes = 16 << 20

// rulesInclude is a rules section read from its own file.
type rulesInclude struct {
	file string     // as opened: joined to the main file's directory
	root *yaml.Node // its document
}

// owns reports whether a Validate error ("rules.rules[2].when: …") belongs
// to the included file, and returns it with the path relative to that
// file's root ("rules[2].when: …").
func (inc *rulesInclude) owns(msg string) (string, bool) {
	if inc == nil || !strings.HasPrefix(msg, "rules.") || strings.HasPrefix(msg, "rules.file:") {
		return "", false
	}
	return strings.TrimPrefix(msg, "rules."), true
}

// includeRules reads the file named by rules.file, if any, into cfg.Rules
// (keeping File). It returns the file's document for positioning Validate's
// errors (nil when there is none) and the problems found so far.
func includeRules(name string, root *yaml.Node, cfg *Config) (*rulesInclude, []error) {
	sec := child(docNode(root), "rules")
	if sec == nil {
		return nil, nil
	}
	fileNode := child(sec, "file")
	if fileNode == nil || fileNode.Kind != yaml.ScalarNode {
		return nil, nil // absent, or a type error already reported
	}
	at := func(msg string) error {
		return &ConfigError{File: name, Line: fileNode.Line, Column: fileNode.Column, Path: "rules.file", Msg: msg}
	}
	var errs []error
	if len(sec.Content) > 2 {
		errs = append(errs, at("cannot be combined with inline rules"))
	}
	ref := cfg.Rules.File
	cfg.Rules = rules.Config{File: ref} // inline keys, if any, are not used
	if strings.TrimSpace(ref) == "" {
		return nil, append(errs, at("must be the path of a rules file"))
	}
	path := ref
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(name), path)
	}
	data, err := readRulesFile(path)
	if err != nil {
		return nil, append(errs, at(err.Error()))
	}
	inc := &rulesInclude{file: path, root: &yaml.Node{}}
	if err := yaml.Unmarshal(data, inc.root); err != nil {
		return nil, append(errs, yamlErrors(path, inc.root, err)...)
	}
	if len(inc.root.Content) == 0 {
		return inc, errs // an empty file: no rules
	}
	var rc rules.Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&rc); err != nil && !errors.Is(err, io.EOF) {
		errs = append(errs, yamlErrors(path, inc.root, err)...)
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, errs
		}
	}
	if n := child(docNode(inc.root), "file"); n != nil {
		errs = append(errs, &ConfigError{File: path, Line: n.Line, Column: n.Column, Path: "file",
			Msg: "an included rules file cannot name another"})
	}
	rc.File = ref
	cfg.Rules = rc
	return inc, errs
}

// readRulesFile reads an included file: a regular file of bounded size (a
// FIFO or device would block or never end).
func readRulesFile(path string) ([]byte, error) {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRulesFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxRulesFileBytes {
		return nil, fmt.Errorf("%s is larger than %d MiB", path, maxRulesFileBytes>>20)
	}
	return data, nil
}

// docNode is the top node of a document.
func docNode(root *yaml.Node) *yaml.Node {
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		return root.Content[0]
	}
	return root
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
		exprColumn(ce, n)
	}
	return ce
}

var exprColumnRE = regexp.MustCompile(` \(column (\d+)\)$`)

// exprColumn points an expression error ("… (column 29)", from expr) at the
// exact column in the file when the expression is a one-line plain or
// quoted scalar, and drops the now redundant suffix.
func exprColumn(ce *ConfigError, n *yaml.Node) {
	m := exprColumnRE.FindStringSubmatch(ce.Msg)
	if m == nil || n.Kind != yaml.ScalarNode || strings.Contains(n.Value, "\n") {
		return
	}
	col, _ := strconv.Atoi(m[1])
	switch n.Style {
	case 0:
	case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		if strings.ContainsAny(n.Value, "'\"\\") {
			return // escapes shift columns
		}
		col++
	default:
		return
	}
	ce.Column = n.Column + col - 1
	ce.Msg = strings.TrimSuffix(ce.Msg, m[0])
}

// lookup follows a field path (a.b[2].c) from the document root and returns
// the deepest node found: the value node when the whole path exists, else
// the last parent that does. A mapping key may itself contain dots (a set
// target such as data.version): the longest run of steps naming a key wins.
func lookup(root *yaml.Node, path string) *yaml.Node {
	n := docNode(root)
	steps := splitPath(path)
	for i := 0; i < len(steps); {
		next, used := childSteps(n, steps[i:])
		if next == nil {
			return n
		}
		n = next
		i += used
	}
	return n
}

// childSteps finds the child named by the first step, or by several steps
// joined with dots when a key holds dots; it returns how many it used.
func childSteps(n *yaml.Node, steps []string) (*yaml.Node, int) {
	if n.Kind == yaml.MappingNode {
		for k := len(steps); k > 1; k-- {
			if strings.HasPrefix(steps[k-1], "[") {
				continue
			}
			if c := child(n, strings.Join(steps[:k], ".")); c != nil {
				return c, k
			}
		}
	}
	return child(n, steps[0]), 1
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
