package cloudevent

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"testing"
)

// dropped is a property Map did not make an extension, and why.
type dropped struct {
	key, reason string
	value       string
}

// mapProps maps a message with props and returns the user-property
// extensions (name → value, in order) and what was dropped.
func mapProps(t testing.TB, props ...Property) ([]Extension, []dropped) {
	t.Helper()
	m, err := Compile(DefaultConfig(), "gw")
	if err != nil {
		t.Fatal(err)
	}
	var drops []dropped
	e, err := m.Map(Message{Topic: "devices/d/t", Payload: []byte(`1`), QoS: 1, ClientID: "d", AuthMethod: "anonymous",
		UserProperties: props,
		DroppedProperty: func(_ Message, p Property, reason string) {
			drops = append(drops, dropped{p.Key, reason, p.Value})
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Validate(); err != nil {
		t.Fatalf("invalid event: %v", err)
	}
	// The gateway's extensions come first: mqtttopic, mqttqos, edgegateclientid, edgegateauth.
	if len(e.Extensions) < 4 || e.Extensions[0].Value.Str() != "devices/d/t" || e.Extensions[1].Value.Int() != 1 ||
		e.Extensions[2].Value.Str() != "d" || e.Extensions[3].Value.Str() != "anonymous" {
		t.Fatalf("gateway extensions changed: %+v", e.Extensions)
	}
	return e.Extensions[4:], drops
}

// fnvHex is the 8 hex digits of the FNV-1a 32-bit hash of key.
func fnvHex(key string) string {
	h := fnv.New32a()
	h.Write([]byte(key))
	return fmt.Sprintf("%08x", h.Sum32())
}

// The folding of property keys into extension names, as the README
// documents it.
func TestPropertyFolding(t *testing.T) {
	p := func(kv ...string) []Property {
		var ps []Property
		for i := 0; i < len(kv); i += 2 {
			ps = append(ps, Property{kv[i], kv[i+1]})
		}
		return ps
	}
	tests := []struct {
		name  string
		props []Property
		want  []string // name=value, in wire order
		drops []dropped
	}{
		{"a valid name is kept as it is", p("zone", "a", "fw2", "b"), []string{"zone=a", "fw2=b"}, nil},
		{"folded: lower case, letters and digits", p("Firmware-Version", "1.2"), []string{"firmwareversion=1.2"}, nil},
		{
			"two long keys that differ after the cut are both kept",
			p("sensor_calibration_offset_a", "1", "sensor_calibration_offset_b", "2"),
			[]string{"sensorcalibr" + fnvHex("sensor_calibration_offset_a") + "=1", "sensorcalibr" + fnvHex("sensor_calibration_offset_b") + "=2"},
			nil,
		},
		{
			"keys that differ only in case or punctuation are both kept, the first plain",
			p("Content-Kind", "a", "content_kind", "b"),
			[]string{"contentkind=a", "contentkind" + fnvHex("content_kind") + "=b"},
			nil,
		},
		{
			"a valid key keeps its name whatever the order",
			p("Temp", "folded", "temp", "exact"),
			[]string{"temp" + fnvHex("Temp") + "=folded", "temp=exact"},
			nil,
		},
		{"nothing to fold", p("%%", "x", "ü", "y"), []string{fnvHex("%%") + "=x", fnvHex("ü") + "=y"}, nil},
		{
			"a repeated key: the first value wins, the rest are counted",
			p("zone", "a", "zone", "b", "Zone", "c", "Zone", "d"),
			[]string{"zone=a", "zone" + fnvHex("Zone") + "=c"},
			[]dropped{{"zone", DropDuplicate, ""}, {"Zone", DropDuplicate, ""}},
		},
		{
			"reserved: context attributes, data, the gateway's prefixes, replayed",
			p("id", "x", "Source", "x", "DATA", "x", "data_base64", "ok", "replayed", "true", "edgegateerror", "x",
				"EdgeGate-Attempts", "9", "mqtttopic", "x", "MQTT_QoS", "2", "edgegate-user-with-a-long-name", "x",
				"SpecVersion", "x", "schemaurl", "x"),
			[]string{"database64=ok"},
			[]dropped{{"id", DropReserved, ""}, {"Source", DropReserved, ""}, {"DATA", DropReserved, ""}, {"replayed", DropReserved, ""},
				{"edgegateerror", DropReserved, ""}, {"EdgeGate-Attempts", DropReserved, ""}, {"mqtttopic", DropReserved, ""},
				{"MQTT_QoS", DropReserved, ""}, {"edgegate-user-with-a-long-name", DropReserved, ""}, {"SpecVersion", DropReserved, ""},
				{"schemaurl", DropReserved, ""}},
		},
		{
			"a hashed name taken by a different key",
			p("x"+fnvHex("X"), "exact", "x", "plain", "X", "folded"),
			[]string{"x" + fnvHex("X") + "=exact", "x=plain"},
			[]dropped{{"X", DropCollision, ""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exts, drops := mapProps(t, tt.props...)
			var got []string
			for _, x := range exts {
				got = append(got, x.Name+"="+x.Value.Str())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("extensions %q\nwant       %q", got, tt.want)
			}
			for i := range drops {
				drops[i].value = ""
			}
			if !slices.Equal(drops, tt.drops) {
				t.Errorf("dropped %v, want %v", drops, tt.drops)
			}
		})
	}
}

// Many properties take the map path; the result is the scan's.
func TestPropertyFoldingMany(t *testing.T) {
	var props []Property
	for i := range 3 * maxScanned {
		props = append(props, Property{fmt.Sprintf("Key-%d", i%(2*maxScanned)), fmt.Sprint(i)})
	}
	exts, drops := mapProps(t, props...)
	if len(exts) != 2*maxScanned || len(drops) != maxScanned {
		t.Fatalf("%d extensions, %d dropped; want %d and %d", len(exts), len(drops), 2*maxScanned, maxScanned)
	}
	for i, x := range exts {
		if want := fmt.Sprintf("key%d", i); x.Name != want || x.Value.Str() != fmt.Sprint(i) {
			t.Errorf("extension %d: %s=%s, want %s=%d", i, x.Name, x.Value.Str(), want, i)
		}
	}
	for _, d := range drops {
		if d.reason != DropDuplicate {
			t.Errorf("%v, want a duplicate", d)
		}
	}
}

// FuzzPropertyFolding: whatever keys a device sends, every property
// becomes an extension or is reported dropped (never silently lost), the
// gateway's own extensions stay as they were (mapProps), names are valid,
// unique and never reserved for the gateway, a key that is a valid name
// keeps it, the same message always gives the same names, and a distinct
// key is lost only when its name is reserved or even its hashed name is
// taken.
func FuzzPropertyFolding(f *testing.F) {
	f.Add("sensor_calibration_offset_a", "sensor_calibration_offset_b", "replayed", "Zone", "zone")
	f.Add("a", "A", "a-", "%%", "")
	f.Add("edgegateuser", "EdgeGateUser", "id", "datacontenttype", "x")
	f.Add("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrst", "abcdefghijkl", "\xff")
	f.Fuzz(func(t *testing.T, k1, k2, k3, k4, k5 string) {
		keys := []string{k1, k2, k3, k4, k5, k1, strings.ToUpper(k2)}
		var props []Property
		for i, k := range keys {
			props = append(props, Property{k, fmt.Sprint(i)}) // unique values
		}
		exts, drops := mapProps(t, props...)
		again, _ := mapProps(t, props...)
		if !slices.Equal(exts, again) {
			t.Fatalf("not deterministic: %v, then %v", exts, again)
		}
		if len(exts)+len(drops) != len(props) {
			t.Fatalf("%d extensions + %d dropped != %d properties: %v %v", len(exts), len(drops), len(props), exts, drops)
		}
		seen := map[string]bool{}
		for _, x := range exts {
			if ReservedForGateway(x.Name) {
				t.Fatalf("a device set %q", x.Name)
			}
			if seen[x.Name] {
				t.Fatalf("%q twice", x.Name)
			}
			seen[x.Name] = true
		}
		// Values are unique: they tell which property a drop was.
		why := map[string]string{}
		for _, d := range drops {
			why[d.value] = d.reason
		}
		xi := 0
		for i, p := range props {
			if reason, ok := why[p.Value]; ok {
				switch reason {
				case DropDuplicate:
					if !slices.ContainsFunc(props[:i], func(q Property) bool { return q.Key == p.Key }) {
						t.Fatalf("%q dropped as a duplicate of nothing", p.Key)
					}
				case DropReserved:
					f := appendFolded(nil, p.Key)
					if !ReservedForGateway(string(f)) && !ReservedForGateway(hashedName(f, p.Key)) {
						t.Fatalf("%q dropped as reserved", p.Key)
					}
				case DropCollision:
					if !seen[hashedName(appendFolded(nil, p.Key), p.Key)] {
						t.Fatalf("%q dropped as a collision, but its hashed name is free", p.Key)
					}
				default:
					t.Fatalf("%q dropped: %q", p.Key, reason)
				}
				continue
			}
			// Extensions are the kept properties in wire order.
			if xi == len(exts) {
				t.Fatalf("property %q neither kept nor dropped", p.Key)
			}
			x := exts[xi]
			xi++
			if x.Value.Str() != p.Value {
				t.Fatalf("%s=%q, want %q (from %q)", x.Name, x.Value.Str(), p.Value, p.Key)
			}
			if ValidExtensionName(p.Key) && x.Name != p.Key {
				t.Fatalf("valid key %q renamed %q", p.Key, x.Name)
			}
		}
	})
}
