package docs

import _ "embed"

//go:embed config.md
var configReference string

// ConfigReference returns the configuration reference: every key of the
// configuration file with its type, default and description, as Markdown.
func ConfigReference() string { return configReference }
