package access

import (
	"strings"
	"testing"
)

func mustTemplate(t testing.TB, src string) template {
	t.Helper()
	tpl, err := compileTemplate(src)
	if err != nil {
		t.Fatalf("compileTemplate(%q): %v", src, err)
	}
	return tpl
}

func TestTemplateMatchTopic(t *testing.T) {
	door := newVars("door-1", "door-1")
	for _, tc := range []struct {
		tpl, topic string
		vs         vars
		want       bool
	}{
		{"devices/%u/#", "devices/door-1/telemetry", door, true},
		{"devices/%u/#", "devices/door-1", door, true}, // '#' includes the parent level
		{"devices/%u/#", "devices/door-2/telemetry", door, false},
		{"devices/%u/#", "devices/door-1x/telemetry", door, false},
		{"devices/%c/+", "devices/door-1/cmd", door, true},
		{"devices/%c/+", "devices/door-1/cmd/x", door, false},
		{"devices/%c/+", "devices/door-1", door, false},
		{"devices/%u/#", "devices/x/telemetry", newVars("", "x"), false}, // anonymous: %u matches nothing
		{"devices/%c/#", "devices/a/b/telemetry", newVars("u", "a/b"), false},
		{"devices/%c/#", "devices/#/x", newVars("u", "#"), false},
		{"devices/%c/#", "devices/+/x", newVars("u", "+"), false},
		{"dev-%u-%c/x", "dev-door-1-c7/x", newVars("door-1", "c7"), true},
		{"dev-%u-%c/x", "dev-door-1-c8/x", newVars("door-1", "c7"), false},
		{"100%%/%u", "100%/door-1", door, true},
		{"#", "anything/at/all", door, true},
		{"#", "$SYS/broker/uptime", door, false},
		{"+/broker/uptime", "$SYS/broker/uptime", door, false},
		{"$SYS/#", "$SYS/broker/uptime", door, true},
		{"$SYS/#", "$SYSX/broker/uptime", door, false},
		{"%u/#", "$SYS/x", newVars("$SYS", "c"), false},
		{"a/+/c", "a//c", door, true},
		{"a/b", "a/b/", door, false},
		{"a/b/", "a/b/", door, true},
	} {
		tpl := mustTemplate(t, tc.tpl)
		if got := tpl.matchTopic(tc.topic, tc.vs); got != tc.want {
			t.Errorf("%q matchTopic(%q, %+v) = %v, want %v", tc.tpl, tc.topic, tc.vs, got, tc.want)
		}
	}
}

func TestTemplateCovers(t *testing.T) {
	door := newVars("door-1", "door-1")
	for _, tc := range []struct {
		tpl, filter string
		want        bool
	}{
		{"devices/%u/#", "devices/door-1/#", true},
		{"devices/%u/#", "devices/door-1/+", true},
		{"devices/%u/#", "devices/door-1/cmd/+/x", true},
		{"devices/%u/#", "devices/door-1", true},
		{"devices/%u/#", "devices/+/cmd", false},
		{"devices/%u/#", "devices/#", false},
		{"devices/%u/#", "#", false},
		{"devices/%u/cmd/#", "devices/door-1/#", false},
		{"devices/+/cmd", "devices/+/cmd", true},
		{"devices/+/cmd", "devices/a/cmd", true},
		{"devices/+/cmd", "devices/#", false},
		{"devices/a/cmd", "devices/+/cmd", false},
		{"#", "#", true},
		{"#", "+/x", true},
		{"#", "$SYS/#", false},
		{"#", "$SYS/broker/uptime", false},
		{"+/#", "$SYS/#", false},
		{"$SYS/#", "$SYS/#", true},
		{"$SYS/#", "$SYS/broker/+", true},
		{"$SYS/broker/+", "$SYS/#", false},
		{"a/+", "a", false},
		{"a/#", "a", true},
		{"a", "a/#", false},
	} {
		tpl := mustTemplate(t, tc.tpl)
		if got := tpl.covers(tc.filter, door); got != tc.want {
			t.Errorf("%q covers(%q) = %v, want %v", tc.tpl, tc.filter, got, tc.want)
		}
	}
}

func TestCompileTemplateErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"", "must not be empty"},
		{"a/#/b", "'#' must be the last level"},
		{"a/b#", "whole level"},
		{"a/+b", "whole level"},
		{"a/%x", "unknown variable %x"},
		{"a/%", "at the end"},
		{"$%u/x", "named literally"},
		{"a\x00", "NUL"},
		{"\xff", "UTF-8"},
	} {
		_, err := compileTemplate(tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("compileTemplate(%q) = %v, want an error containing %q", tc.src, err, tc.want)
		}
	}
}

// refMatch is the MQTT topic matching rule, written as plainly as
// possible: levels split, '+' one level, '#' the rest and its parent, and
// wildcards at the first level never match a '$' topic.
func refMatch(filter, topic string) bool {
	f, tp := strings.Split(filter, "/"), strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (f[0] == "+" || f[0] == "#") {
		return false
	}
	for i, l := range f {
		if l == "#" {
			return true
		}
		if i >= len(tp) || (l != "+" && l != tp[i]) {
			return false
		}
	}
	return len(f) == len(tp)
}

// expand is the template with its variables replaced, as a plain filter,
// and whether every variable had a value.
func expand(src string, vs vars) (string, bool) {
	ok := true
	var b strings.Builder
	for i := 0; i < len(src); i++ {
		if src[i] != '%' || i+1 == len(src) {
			b.WriteByte(src[i])
			continue
		}
		i++
		switch src[i] {
		case 'u':
			ok = ok && vs.u != ""
			b.WriteString(vs.u)
		case 'c':
			ok = ok && vs.c != ""
			b.WriteString(vs.c)
		default:
			b.WriteByte(src[i])
		}
	}
	return b.String(), ok
}

// The template matcher faces topics and filters from devices and client
// ids chosen by them: it never panics, agrees with the plain MQTT rule on
// topics, never grants a '$' topic unless the template names its first
// level, and grants a subscription only if it grants every topic the
// subscription can receive (checked on topics built from the filter).
func FuzzTemplate(f *testing.F) {
	for _, s := range [][4]string{
		{"devices/%u/#", "devices/d1/telemetry", "d1", "d1"},
		{"devices/%c/+", "devices/+/cmd", "u", "c/x"},
		{"#", "$SYS/broker/uptime", "u", "c"},
		{"$SYS/#", "$SYS/#", "u", "c"},
		{"a/+/%c", "a/b/#", "", "#"},
		{"dev-%u-%c/%%/x", "dev-a-b/%/x", "a", "b"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, src, s, user, clientID string) {
		tpl, err := compileTemplate(src)
		if err != nil {
			return
		}
		vs := newVars(user, clientID)
		if !strings.ContainsAny(s, "+#") {
			got := tpl.matchTopic(s, vs)
			if tpl.covers(s, vs) != got {
				t.Fatalf("%q: covers(%q) and matchTopic disagree", src, s)
			}
			if plain, ok := expand(src, vs); ok && strings.Count(plain, "/") == strings.Count(src, "/") {
				if want := refMatch(plain, s) && !(strings.HasPrefix(s, "$") && !strings.HasPrefix(src, "$")); got != want {
					t.Fatalf("%q (as %q) matchTopic(%q) = %v, want %v", src, plain, s, got, want)
				}
			} else if got && strings.Contains(src, "%") {
				t.Fatalf("%q granted %q although a variable has no value (%+v)", src, s, vs)
			}
			if got && strings.HasPrefix(s, "$") && !strings.HasPrefix(src, "$") {
				t.Fatalf("%q granted the '$' topic %q", src, s)
			}
			return
		}
		if !tpl.covers(s, vs) {
			return
		}
		// Topics the filter matches: each '+' and '#' replaced by a level.
		for _, fill := range []string{"x", "", "a/b"} {
			topic := strings.ReplaceAll(strings.ReplaceAll(s, "+", strings.Split(fill, "/")[0]), "#", fill)
			if !strings.Contains(s, "#") && fill == "a/b" {
				continue
			}
			if !refMatch(s, topic) {
				continue
			}
			if !tpl.matchTopic(topic, vs) {
				t.Fatalf("%q covers filter %q but not its topic %q", src, s, topic)
			}
		}
	})
}

func BenchmarkCanPublish(b *testing.B) {
	c, err := Compile(Config{ClientID: ClientIDUsername, ACL: []Rule{
		{Users: []string{"dashboard"}, Subscribe: []string{"devices/#", "$SYS/#"}},
		{Users: []string{Everyone}, Publish: []string{"devices/%u/#"}, Subscribe: []string{"devices/%u/cmd/#"}},
	}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	id := Identity{ClientID: "door-17", Username: "door-17", Method: MethodPassword}
	b.ReportAllocs()
	for b.Loop() {
		if !c.CanPublish(id, "devices/door-17/telemetry") {
			b.Fatal("denied")
		}
	}
}
