package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

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
