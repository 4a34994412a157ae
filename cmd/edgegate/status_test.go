package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/edgegate/edgegate/gateway"
)

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                   "0s",
		1400 * time.Millisecond:        "1s",
		59 * time.Second:               "59s",
		12*time.Minute + 5*time.Second: "12m5s",
		3*time.Hour + 12*time.Minute:   "3h12m",
		47*time.Hour + 59*time.Minute:  "47h59m",
		4*24*time.Hour + 2*time.Hour:   "4d2h",
	} {
		if got := age(d); got != want {
			t.Errorf("age(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestWrap(t *testing.T) {
	got := wrap("cloud: post http://10.0.0.5:8081/: dial tcp 10.0.0.5:8081: connect: connection refused", 40, "    ")
	want := "cloud: post http://10.0.0.5:8081/: dial\n    tcp 10.0.0.5:8081: connect:\n    connection refused\n"
	if got != want {
		t.Errorf("wrap:\n%s\nwant\n%s", got, want)
	}
	// A word longer than the width stays whole on its own line.
	if got := wrap("a "+strings.Repeat("x", 50), 20, "  "); got != "a\n  "+strings.Repeat("x", 50)+"\n" {
		t.Errorf("long word: %q", got)
	}
}

// printStatus keeps to 80 columns whatever the names and errors, lists
// the reasons of a gateway that is not ready under the verdict, and says
// how many devices it did not list.
func TestPrintStatusFits80Columns(t *testing.T) {
	now := time.Date(2026, 11, 23, 3, 41, 7, 0, time.UTC)
	var st gateway.Status
	st.GatewayID, st.Version, st.Now, st.StartedAt = "gw-barn-1", "v1.4.0", now, now.Add(-76*time.Hour)
	st.NotReady = []string{"buffer: " + strings.Repeat("very long reason ", 10)}
	st.Clients = 40
	raw := `{"clients": [{"client_id": "` + strings.Repeat("d", 30) + `-1"}, {"client_id": "` + strings.Repeat("d", 30) + `-2"}, {"client_id": "` + strings.Repeat("d", 30) + `-3"}],
		"uplinks": [{"name": "cloud", "state": "failing", "up": false, "consecutive_failures": 12, "backlog": 123456789, "oldest_age_seconds": 7200,
		"last_error": "` + strings.Repeat("boom ", 40) + `"}, {"name": "archive", "state": "idle", "up": true, "delivered": 5},
		{"name": "old", "state": "removed", "removed": true, "backlog": 7}]}`
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := printStatus(&b, st); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Logf("\n%s", out)
	for _, l := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("%d columns: %s", n, l)
		}
	}
	for _, want := range []string{
		"gw-barn-1 v1.4.0: NOT READY\n  buffer: very long reason",
		"\nup       3d4h (since 2026-11-19T23:41:07Z)\n",
		"\nconfig   sha256 -, LAST RELOAD FAILED (see the log)\n",
		"\ndevices  40 online: " + strings.Repeat("d", 30) + "-1, … 39 more\n",
		"\ncloud    failing(12)  123456789  2h0m    0     0\n",
		"\narchive  idle         0          -       5     0\n",
		"\ncloud: boom boom",
		"\nold      removed      7          -       0     0\n",
		"\nold: removed from the configuration; its backlog waits: edgegate buffer replay\n    --queue uplink.old --to UPLINK, or purge it\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q", want)
		}
	}
	if strings.Contains(out, "archive: ") {
		t.Error("an uplink that is up has no error line")
	}
}
