package configschema

import (
	"fmt"
	"reflect"
	"strings"
)

// A configuration type's schema and reference: keys from the yaml tags,
// descriptions from the fields' doc comments, defaults from a default
// value, accepted values from Options.
func ExampleGenerate() {
	s, err := Generate(reflect.TypeFor[exampleConfig](), exampleOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	md := string(s.Markdown("Example"))
	entry := md[strings.Index(md, "### `mode`"):]
	entry, _, _ = strings.Cut(entry, "\n\n#")
	fmt.Println(entry)
	// Output:
	// ### `mode`
	//
	// *string · default `fast` · one of `fast`, `slow`*
	//
	// `mode` is fast or slow.
}
