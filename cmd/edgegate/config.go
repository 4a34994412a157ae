package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/edgegate/edgegate/docs"
)

// newConfigReferenceCmd is config reference: the generated reference that
// package docs embeds, offline (no admin API).
func newConfigReferenceCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "reference",
		Short: "print every configuration key: type, default, description",
		Long: `Prints the configuration reference (Markdown): every key of the
configuration file with its type, default, accepted values and description.
The same text is docs/config.md; configs/edgegate.schema.json is its JSON
Schema, for editors (see the README, "Reference and editor support").`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := io.WriteString(a.stdout, docs.ConfigReference())
			return err
		},
	}
}
