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
    http:
      url: ftp://example.com/
    colour: blue
    timeout: 5s
`))
	fmt.Println(err)
	// Output:
	// edgegate.yaml:3:13: buffer.overflow: must be "drop_oldest" or "reject", not "keep_newest"
	// edgegate.yaml:7:12: uplinks[0].http.url: must be an http:// or https:// URL
	// edgegate.yaml:8:5: uplinks[0].colour: unknown field "colour"
	// edgegate.yaml:9:5: uplinks[0].timeout: moved to uplinks[0].http.timeout
}
