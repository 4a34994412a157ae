package gateway_test

import (
	"fmt"

	"github.com/edgegate/edgegate/gateway"
)

// Parse reports every problem of a configuration at once, each with its
// file, line, column and field.
func ExampleParse() {
	_, err := gateway.Parse("edgegate.yaml", []byte(`gateway_id: gw-1
buffer:
  overflow: keep_newest
uplinks:
  - name: cloud
    type: http
    url: ftp://example.com/
    colour: blue
`))
	fmt.Println(err)
	// Output:
	// edgegate.yaml:8:5: uplinks[0].colour: unknown field "colour"
	// edgegate.yaml:3:13: buffer.overflow: must be "drop_oldest" or "reject", not "keep_newest"
	// edgegate.yaml:7:10: uplinks[0].url: must be an http:// or https:// URL
}
