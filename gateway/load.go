package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/edgegate/edgegate/internal/yamlconf"
	"github.com/edgegate/edgegate/rules"
)

// LoadFile reads, decodes, checks and compiles a configuration file (see
// Parse). Starting and reloading both come here.
func LoadFile(path string) (*Compiled, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes configuration bytes strictly over DefaultConfig and
// compiles them (Compile); name is used in errors. The error lists every
// problem found, each a *ConfigError reading `file:line:col: path: what is
// wrong`, in file order.
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
//
// Relative paths of the mqtt listeners' tls files are relative to the
// directory of name.
func Parse(name string, data []byte) (*Compiled, error) {
	return parse(name, filepath.Dir(name), data)
}

// parse is Parse with relative files read from dir: a pushed document is
// named by its origin ("push") and reads them beside the local file.
func parse(name, dir string, data []byte) (*Compiled, error) {
	cfg := DefaultConfig()
	doc, err := yamlconf.Decode(name, data, &cfg)
	if doc == nil {
		return nil, err
	}
	if doc.Empty() {
		return nil, &ConfigError{File: name, Line: 1, Column: 1, Msg: "file is empty"}
	}
	inc, incProbs := includeRules(doc, dir, &cfg)
	decoded := append(yamlconf.Problems(err), incProbs...)
	probs := decoded
	c, err := compile(cfg, dir)
	for _, e := range yamlconf.Problems(err) {
		if e = inc.locate(doc, e); !decodedBadly(e, decoded) {
			probs = append(probs, e)
		}
	}
	if len(probs) > 0 {
		return nil, joinProblems(yamlconf.Sort(name, probs))
	}
	c.doc, c.data = doc, data
	h := sha256.New()
	h.Write(data)
	if inc != nil {
		h.Write(inc.data)
	}
	c.hash = hex.EncodeToString(h.Sum(nil))
	return c, nil
}

// decodedBadly reports whether problem e of Compile is a consequence of a
// value that failed to decode: at, under or above it (Compile saw the
// default there, or a section without the part that failed), where it
// would only repeat the problem already reported.
func decodedBadly(e *yamlconf.Error, probs []*yamlconf.Error) bool {
	for _, p := range probs {
		if p.File != e.File || p.Path.IsRoot() || e.Path.IsRoot() {
			continue
		}
		_, under := e.Path.CutPrefix(p.Path)
		_, above := p.Path.CutPrefix(e.Path)
		if under || above {
			return true
		}
	}
	return false
}

func joinProblems(probs []*yamlconf.Error) error {
	var l yamlconf.List
	for _, e := range probs {
		l = append(l, e)
	}
	return l.Err()
}

// maxRulesFileBytes bounds an included rules file.
const maxRulesFileBytes = 16 << 20

// rulesInclude is a rules section read from its own file.
type rulesInclude struct {
	doc  *yamlconf.Document // nil when the file could not be parsed
	data []byte
}

// locate positions a Compile problem: a problem of the rules section in
// the included file (path from that file's root), any other in the main
// document.
func (inc *rulesInclude) locate(main *yamlconf.Document, e *yamlconf.Error) *yamlconf.Error {
	sec := yamlconf.Key("rules")
	if inc != nil && inc.doc != nil {
		if _, isFile := e.Path.CutPrefix(sec.Key("file")); !isFile {
			if rel, ok := e.Path.CutPrefix(sec); ok {
				c := *e
				c.Path = rel
				return yamlconf.Problems(inc.doc.Locate(&c))[0]
			}
		}
	}
	return yamlconf.Problems(main.Locate(e))[0]
}

// includeRules reads the file named by rules.file, if any, into cfg.Rules
// (keeping File). It returns the included document for locating Compile's
// problems (nil when there is no file) and the problems found so far.
func includeRules(main *yamlconf.Document, dir string, cfg *Config) (*rulesInclude, []*yamlconf.Error) {
	at := yamlconf.Key("rules").Key("file")
	if n := main.Node(at); n == nil || n.Kind != yaml.ScalarNode {
		return nil, nil // absent, or a type error already reported
	}
	problem := func(format string, args ...any) *yamlconf.Error {
		return yamlconf.Problems(main.Locate(yamlconf.Errorf(at, format, args...)))[0]
	}
	var probs []*yamlconf.Error
	if len(main.Node(yamlconf.Key("rules")).Content) > 2 {
		probs = append(probs, problem("cannot be combined with inline rules"))
	}
	ref := cfg.Rules.File
	cfg.Rules = rules.Config{File: ref} // inline keys, if any, are not used
	if strings.TrimSpace(ref) == "" {
		return nil, append(probs, problem("must be the path of a rules file"))
	}
	path := ref
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	data, err := yamlconf.ReadFile(path, maxRulesFileBytes)
	if err != nil {
		return nil, append(probs, problem("%v", err))
	}
	var rc rules.Config
	doc, err := yamlconf.Decode(path, data, &rc)
	probs = append(probs, yamlconf.Problems(err)...)
	inc := &rulesInclude{doc: doc, data: data}
	if doc == nil {
		return inc, probs
	}
	if n := doc.Node(yamlconf.Key("file")); n != nil {
		probs = append(probs, &yamlconf.Error{File: path, Line: n.Line, Column: n.Column,
			Path: yamlconf.Key("file"), Msg: "an included rules file cannot name another"})
	}
	rc.File = ref
	cfg.Rules = rc
	return inc, probs
}
