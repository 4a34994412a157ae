// Package configschema owns how a configuration's Go types become user
// documentation: a JSON Schema (draft-07, the draft VS Code's YAML
// extension supports best) that editors use to complete and check the
// file, and a Markdown reference of every key with its type, default and
// description, both from one walk of the types.
//
// The types are the one owner of the facts. Keys are the `yaml` tags
// (`,inline` structs flattened as the decoder does; `-` left out); every
// struct refuses unknown keys, as the loader does; descriptions are the Go
// doc comments of the fields, read from the packages' source at generation
// time (Go field names in them become keys); defaults are the field values
// of a default configuration, and of the types that set their own defaults
// (yamlconf.Defaulter) where the decoder allocates them. A type that
// decodes itself (yaml.Unmarshaler) describes its YAML form with a
// JSONSchema method. What the types cannot say (which strings a field
// accepts, which keys are required) the caller gives in Options, by field;
// an entry that names no field is an error, so a renamed field cannot
// leave a stale one behind.
//
// It reads source files, so it runs in generators and tests (make schema),
// never in the gateway. configschema imports no edgegate package but
// internal/yamlconf. It holds no state: Generate is safe for concurrent
// use.
package configschema
