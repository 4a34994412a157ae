package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/edgegate/edgegate/docs"
)

const configUsage = `Usage:
  edgegate config reference   print the configuration reference (Markdown): every
                              key with its type, default and description

The same reference is docs/config.md; configs/edgegate.schema.json is its
JSON Schema, for editors.
`

// cmdConfig runs `edgegate config reference`.
func cmdConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "reference" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, configUsage)
			return nil
		}
		fmt.Fprint(stderr, configUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("config reference", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, configUsage) }
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprint(stderr, configUsage)
		return errUsage
	}
	_, err := io.WriteString(stdout, docs.ConfigReference())
	return err
}
