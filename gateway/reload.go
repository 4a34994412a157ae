package gateway

import (
	"reflect"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// restartOnly names every changed field that cannot be applied live. The
// auth section (and its users file) is not one of them.
func restartOnly(old, cfg Config) error {
	var errs yamlconf.List
	check := func(at yamlconf.Path, a, b any) {
		if !reflect.DeepEqual(a, b) {
			errs.Add(at, "change requires restart")
		}
	}
	check(yamlconf.Key("gateway_id"), old.GatewayID, cfg.GatewayID)
	check(yamlconf.Key("log").Key("format"), old.Log.Format, cfg.Log.Format)
	// admin.tokens and admin.allow_unauthenticated change live.
	check(yamlconf.Key("admin").Key("listen"), old.Admin.Listen, cfg.Admin.Listen)
	check(yamlconf.Key("admin").Key("tls"), old.Admin.TLS, cfg.Admin.TLS)
	check(yamlconf.Key("mqtt"), old.MQTT, cfg.MQTT)
	check(yamlconf.Key("buffer"), old.Buffer, cfg.Buffer)
	check(yamlconf.Key("uplinks"), old.Uplinks, cfg.Uplinks)
	check(yamlconf.Key("memory_limit"), old.MemoryLimit, cfg.MemoryLimit)
	return errs.Err()
}
