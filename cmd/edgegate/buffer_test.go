package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	local := func(y int, mo time.Month, d, h, mi, s int) time.Time {
		return time.Date(y, mo, d, h, mi, s, 0, time.Local)
	}
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-11-23T03:41:07Z", time.Date(2026, 11, 23, 3, 41, 7, 0, time.UTC)},
		{"2026-11-23T03:41:07.5+02:00", time.Date(2026, 11, 23, 1, 41, 7, 5e8, time.UTC)},
		{"2026-11-23T03:41:07", local(2026, 11, 23, 3, 41, 7)},
		{"2026-11-23 03:41:07", local(2026, 11, 23, 3, 41, 7)},
		{"2026-11-23 03:41", local(2026, 11, 23, 3, 41, 0)},
		{" 2026-11-23 ", local(2026, 11, 23, 0, 0, 0)},
		{"90m", now.Add(-90 * time.Minute)},
		{"2h30m", now.Add(-150 * time.Minute)},
	} {
		got, err := parseTime(tc.in, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "-2h", "0s", "2026-13-01", "2026-11-23T25:00:00Z", "1700000000"} {
		if got, err := parseTime(bad, now); err == nil {
			t.Errorf("parseTime(%q) = %v, want an error", bad, got)
		}
	}
}

// Whatever a user types, parseTime does not panic, and a time it accepts
// survives the trip to the admin API (RFC 3339 with nanoseconds).
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-11-23T03:41:07Z", "2026-11-23 03:41", "2026-11-23", "90m", "-1h", "9999999h", "2026-11-23T03:41:07.123456789-07:00"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTime(s, now)
		if err != nil {
			return
		}
		if got.Year() < 0 || got.Year() > 9999 {
			return // time.Format cannot write it as RFC 3339; the API refuses it
		}
		back, err := time.Parse(time.RFC3339Nano, got.Format(time.RFC3339Nano))
		if err != nil || !back.Equal(got) {
			t.Fatalf("parseTime(%q) = %v: round trip %v, %v", s, got, back, err)
		}
	})
}

// The buffer command group: a table of subcommands, usage with every one,
// exit 2 for a usage error with its message.
func TestBufferCommandUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runArgs([]string{"buffer", "help"}, &out, &errb); code != 0 {
		t.Fatalf("buffer help: exit %d\n%s", code, errb.String())
	}
	for _, c := range newBufferCmd(&app{}).Commands() {
		if !strings.Contains(out.String(), "  "+c.Name()+" ") {
			t.Errorf("usage lacks %s:\n%s", c.Name(), out.String())
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"buffer"}, "edgegate buffer COMMAND"},
		{[]string{"buffer", "nope"}, `unknown command "nope"`},
		{[]string{"buffer", "show"}, "edgegate buffer show: want the ID of one event"},
		{[]string{"buffer", "ls", "--since", "yesterday"}, `--since: "yesterday" is not a time`},
		{[]string{"buffer", "ls", "extra"}, `unexpected argument "extra"`},
		{[]string{"buffer", "replay"}, "name --queue, --to or both"},
		{[]string{"buffer", "purge", "--queue", "q"}, "name what to remove"},
		{[]string{"buffer", "stats", "--dir", "d", "--config", "c"}, "give one"},
		{[]string{"buffer", "stats", "--dir", "d", "--admin", "x"}, "give one"},
		{[]string{"buffer", "replay", "--dir", "d", "--queue", "q"}, "needs --config"},
	} {
		out.Reset()
		errb.Reset()
		if code := runArgs(tc.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, want 2 with %q\n%s", tc.args, code, tc.want, errb.String())
		}
	}
	// A stopped gateway's directory that holds no buffer.
	dir := t.TempDir()
	if code := runArgs([]string{"buffer", "stats", "--dir", dir}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no buffer in "+dir) {
		t.Errorf("stats --dir on an empty directory: exit %d\n%s", code, errb.String())
	}
	// No gateway at --admin: say what to do.
	errb.Reset()
	if code := runArgs([]string{"buffer", "stats", "--admin", "127.0.0.1:1"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "is the gateway running?") {
		t.Errorf("stats with no gateway: exit %d\n%s", code, errb.String())
	}
}
