package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// schemaCheck validates data of one event type.
type schemaCheck struct {
	onInvalid string
	validate  func(any) error
}

func compileSchema(p yamlconf.Path, sc Schema) (*schemaCheck, error) {
	var errs yamlconf.List
	if sc.Type == "" {
		errs.Add(p.Key("type"), "is required")
	}
	out := &schemaCheck{onInvalid: sc.OnInvalid}
	switch sc.OnInvalid {
	case "":
		out.onInvalid = OnErrorDeadLetter
	case OnErrorDrop, OnErrorDeadLetter, OnInvalidTag:
	default:
		errs.Add(p.Key("on_invalid"), "must be drop, dead_letter or tag, got %q", sc.OnInvalid)
	}
	if sc.Schema == nil {
		errs.Add(p.Key("schema"), "is required (a JSON Schema, written as YAML or JSON)")
	} else {
		v, err := newSchemaValidator(sc.Type, sc.Schema)
		if err != nil {
			errs.Add(p.Key("schema"), "%s", schemaMessage(err))
		}
		out.validate = v
	}
	if len(errs) > 0 {
		return nil, errs.Err()
	}
	return out, nil
}

func (s *Set) checkSchema(chk *schemaCheck, d *Decision) (stop bool) {
	if chk.validate == nil {
		return false
	}
	err := chk.validate(d.Event.Data)
	if err == nil {
		return false
	}
	msg := schemaMessage(err)
	switch chk.onInvalid {
	case OnErrorDrop:
		d.Drop = true
		return true
	case OnInvalidTag:
		ext := maps.Clone(d.Event.Extensions)
		if ext == nil {
			ext = map[string]any{}
		}
		ext["schemaerror"] = msg
		d.Event.Extensions = ext
		d.Changed = true
		return false
	default:
		d.DeadLetter = "schema: " + msg
		return true
	}
}

var schemaPrefix = regexp.MustCompile(`jsonschema validation failed with '[^']*' - `)

// schemaMessage is a validation or compile error of a schema on one line,
// without jsonschema's preamble.
func schemaMessage(err error) string {
	return schemaPrefix.ReplaceAllString(oneLine(err.Error()), "")
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}

// noLoader refuses every external $ref: rules do no I/O, so a schema must
// be self-contained.
type noLoader struct{}

func (noLoader) Load(u string) (any, error) {
	return nil, fmt.Errorf("external $ref %s: schemas must be self-contained", u)
}

// newSchemaValidator compiles a JSON Schema given as YAML/JSON values.
func newSchemaValidator(typ string, schema any) (func(any) error, error) {
	b, err := json.Marshal(schema)
	if err != nil {
		return nil, fmt.Errorf("not a JSON value: %w", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(noLoader{})
	loc := "mem:///schemas/" + url.PathEscape(typ) + ".json"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, err
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, err
	}
	return func(v any) error {
		if b, ok := v.([]byte); ok {
			return fmt.Errorf("data is not JSON (%d bytes)", len(b))
		}
		return sch.Validate(v)
	}, nil
}
