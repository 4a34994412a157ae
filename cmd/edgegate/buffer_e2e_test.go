package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/edgegate/edgegate/internal/cetest"
	"github.com/edgegate/edgegate/internal/mqtttest"
	"github.com/edgegate/edgegate/internal/testpki"
)

// cli runs the edgegate binary and returns its stdout, stderr and exit code.
func cli(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("edgegate %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// cliOK runs the binary and fails the test unless it exits 0.
func cliOK(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, errOut, code := cli(t, bin, args...)
	if code != 0 {
		t.Fatalf("edgegate %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// summary is the part of `buffer ls --json` the tests read.
type summary struct {
	Queue     string    `json:"queue"`
	Seq       uint64    `json:"seq"`
	Stored    time.Time `json:"stored"`
	ID        string    `json:"id"`
	Replayed  bool      `json:"replayed"`
	Error     string    `json:"error"`
	ErrorCode int       `json:"error_code"`
	ErrorDest string    `json:"error_dest"`
	Attempts  int       `json:"attempts"`
}

// lsJSON lists a queue with `buffer ls --json` (more flags in extra).
func lsJSON(t *testing.T, bin string, extra ...string) []summary {
	t.Helper()
	out := cliOK(t, bin, append([]string{"buffer", "ls", "--json", "--limit", "1000"}, extra...)...)
	var list []summary
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var s summary
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("ls --json line %q: %v", sc.Text(), err)
		}
		list = append(list, s)
	}
	return list
}

// waitQueue polls `buffer ls` until queue holds n events.
func waitQueue(t *testing.T, bin, admin, queue string, n int) []summary {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		list := lsJSON(t, bin, "--admin", admin, "--queue", queue)
		if len(list) == n {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s holds %d events, want %d: %+v", queue, len(list), n, list)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// arrivals polls s until it accepted n events (repeats included).
func arrivals(t *testing.T, s *cetest.Server, n int) []event.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := s.Events()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver got %d events, want %d", len(got), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newBufferE2E is an e2e setup whose buffer keeps delivered events for an
// hour (buffer.retain), so they can be replayed.
func newBufferE2E(t *testing.T) e2e {
	t.Helper()
	e := newE2E(t, "builds and runs the real binary")
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	withRetain := strings.Replace(string(cfg), "  min_free_bytes: 16MiB\n", "  min_free_bytes: 16MiB\n  retain: 1h\n", 1)
	if withRetain == string(cfg) {
		t.Fatal("no buffer section to add retain to")
	}
	if err := os.WriteFile(e.config, []byte(withRetain), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// publishN publishes n QoS 1 telemetry messages for device, payload(i)
// each, and fails unless all are acknowledged.
func publishN(t *testing.T, broker, device string, n int, payload func(i int) string) {
	t.Helper()
	c, err := mqtttest.Dial("tcp://"+broker, device)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(50)
	for i := range n {
		if tok := c.Publish("devices/"+device+"/telemetry", 1, false, payload(i)); !mqtttest.Acked(tok, 10*time.Second) {
			t.Fatalf("publish %d not acknowledged: %v", i, tok.Error())
		}
	}
}

func isPoison(e event.Event) bool { return strings.Contains(string(e.Data()), `"poison":true`) }

// seqPayload is {"seq":i}, with "poison":true for i == poison.
func seqPayload(poison int) func(i int) string {
	return func(i int) string {
		if i == poison {
			return fmt.Sprintf(`{"seq":%d,"poison":true}`, i)
		}
		return fmt.Sprintf(`{"seq":%d}`, i)
	}
}

// startWithDeadLetter starts a sink that refuses poison events and the
// gateway, publishes n events of which event poison is refused, and waits
// until the others arrived and the refused one is a dead letter.
func startWithDeadLetter(t *testing.T, e e2e, n, poison int) (*cetest.Server, *gatewayProc, summary) {
	t.Helper()
	sink := startSink(t, e.uplink)
	sink.RejectIf(isPoison)
	p := startProc(t, e.bin, e.config, e.admin)
	publishN(t, e.mqtt, "d1", n, seqPayload(poison))
	sink.WaitFor(n-1, 20*time.Second)
	return sink, p, waitQueue(t, e.bin, e.admin, "deadletter.cloud", 1)[0]
}

// What an operator does about a dead letter, through the real binary: the
// uplink refuses an event, `buffer ls` shows it with its error, `buffer
// show` prints it; the endpoint is fixed and `buffer replay` delivers it,
// marked replayed, once.
func TestBufferDeadLetterReplay(t *testing.T) {
	e := newBufferE2E(t)
	sink, p, dead := startWithDeadLetter(t, e, 5, 2)
	defer p.kill()
	if dead.ErrorCode != 400 || dead.ErrorDest != "cloud" || dead.Attempts != 1 || !strings.Contains(dead.Error, "refused") {
		t.Fatalf("dead letter: %+v", dead)
	}
	table := cliOK(t, e.bin, "buffer", "ls", "--admin", e.admin, "--queue", "deadletter.cloud")
	if !strings.Contains(table, dead.ID) || !strings.Contains(table, "400 from cloud after 1 attempt: ") ||
		!strings.Contains(table, "QUEUE") {
		t.Errorf("buffer ls table:\n%s", table)
	}
	var shown map[string]any
	if err := json.Unmarshal([]byte(cliOK(t, e.bin, "buffer", "show", dead.ID, "--admin", e.admin)), &shown); err != nil {
		t.Fatal(err)
	}
	if shown["id"] != dead.ID || shown["edgegateerrorcode"] != float64(400) || fmt.Sprint(shown["data"]) != "map[poison:true seq:2]" {
		t.Errorf("buffer show: %v", shown)
	}

	// Replaying before the fix dead-letters the event afresh, with a clean
	// failure (one attempt, not two).
	out := cliOK(t, e.bin, "buffer", "replay", "--admin", e.admin, "--queue", "deadletter.cloud")
	if !strings.Contains(out, "replayed 1 event from deadletter.cloud to cloud (1 removed from deadletter.cloud)") {
		t.Errorf("replay: %s", out)
	}
	again := waitQueue(t, e.bin, e.admin, "deadletter.cloud", 1)[0]
	if again.ID != dead.ID || again.Attempts != 1 || again.ErrorCode != 400 || !again.Replayed {
		t.Fatalf("dead letter after a failed replay: %+v", again)
	}

	sink.Respond(nil) // the endpoint is fixed
	out = cliOK(t, e.bin, "buffer", "replay", "--admin", e.admin, "--queue", "deadletter.cloud")
	if !strings.Contains(out, "replayed 1 event") {
		t.Errorf("replay: %s", out)
	}
	got := arrivals(t, sink, 5)
	last := got[len(got)-1]
	if last.ID() != dead.ID || last.Extensions()["replayed"] != true {
		t.Fatalf("replayed dead letter arrived as %s", last)
	}
	for _, k := range []string{"edgegateerror", "edgegateerrorcode", "edgegateerrordest", "edgegateattempts"} {
		if _, ok := last.Extensions()[k]; ok {
			t.Errorf("the replayed event still carries %s", k)
		}
	}
	waitQueue(t, e.bin, e.admin, "deadletter.cloud", 0)
	if out := cliOK(t, e.bin, "buffer", "replay", "--admin", e.admin, "--queue", "deadletter.cloud"); !strings.Contains(out, "replayed 0 events") {
		t.Errorf("second replay: %s", out)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(sink.Events()); n != 5 {
		t.Fatalf("receiver got %d events, want 5: the dead letter was delivered more than once", n)
	}
	if bad := sink.Violations(); len(bad) > 0 {
		t.Fatalf("invalid CloudEvents: %v", bad)
	}
}

// `buffer replay --since T` re-sends exactly the events stored from T on,
// in order; `buffer purge` removes only what it names; on a stopped
// gateway the commands open the buffer themselves (and refuse to while it
// runs, naming --admin).
func TestBufferReplaySincePurgeOffline(t *testing.T) {
	e := newBufferE2E(t)
	sink := startSink(t, e.uplink)
	p := startProc(t, e.bin, e.config, e.admin)
	defer func() { p.kill() }() // p is restarted below

	publishN(t, e.mqtt, "d1", 3, seqPayload(-1))
	sink.WaitFor(3, 20*time.Second)
	time.Sleep(20 * time.Millisecond) // T falls between two publishes
	publishN(t, e.mqtt, "d2", 4, seqPayload(-1))
	sink.WaitFor(7, 20*time.Second)
	retained := waitQueue(t, e.bin, e.admin, "retained.uplink.cloud", 7)

	since := retained[3].Stored.Add(-time.Microsecond)
	if !since.After(retained[2].Stored) {
		t.Fatalf("events 2 and 3 were stored at the same time: %v", retained[2].Stored)
	}
	out := cliOK(t, e.bin, "buffer", "replay", "--admin", e.admin, "--to", "cloud", "--since", since.Format(time.RFC3339Nano))
	if !strings.Contains(out, "replayed 4 events from retained.uplink.cloud to cloud") {
		t.Fatalf("replay --since: %s", out)
	}
	got := arrivals(t, sink, 11)[7:]
	for i, ev := range got {
		if ev.ID() != retained[3+i].ID || ev.Extensions()["replayed"] != true {
			t.Errorf("replayed #%d: %s (replayed=%v), want %s", i, ev.ID(), ev.Extensions()["replayed"], retained[3+i].ID)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(sink.Events()); n != 11 {
		t.Fatalf("receiver got %d events, want 11", n)
	}

	// The history now holds the 7 deliveries and the 4 replays. Purge one
	// by id, then everything stored before the replays.
	retained = waitQueue(t, e.bin, e.admin, "retained.uplink.cloud", 11)
	out = cliOK(t, e.bin, "buffer", "purge", "--admin", e.admin, "--queue", "retained.uplink.cloud", "--id", retained[1].ID)
	if !strings.Contains(out, "purged 1 event from retained.uplink.cloud") {
		t.Fatalf("purge --id: %s", out)
	}
	left := waitQueue(t, e.bin, e.admin, "retained.uplink.cloud", 10)
	if left[0].ID != retained[0].ID || left[1].ID != retained[2].ID {
		t.Fatalf("purge --id removed more than it named: %+v", left)
	}
	out = cliOK(t, e.bin, "buffer", "purge", "--admin", e.admin, "--queue", "retained.uplink.cloud",
		"--before", retained[7].Stored.Format(time.RFC3339Nano))
	if !strings.Contains(out, "purged 6 events") {
		t.Fatalf("purge --before: %s", out)
	}
	left = waitQueue(t, e.bin, e.admin, "retained.uplink.cloud", 4)
	for i, s := range left {
		if s.Seq != retained[7+i].Seq {
			t.Fatalf("after purge --before: %+v", left)
		}
	}
	if _, errOut, code := cli(t, e.bin, "buffer", "purge", "--admin", e.admin, "--queue", "retained.uplink.cloud"); code != 2 ||
		!strings.Contains(errOut, "name what to remove") {
		t.Errorf("purge without naming anything: exit %d\n%s", code, errOut)
	}

	// While the gateway runs, the buffer is its own.
	_, errOut, code := cli(t, e.bin, "buffer", "ls", "--config", e.config)
	if code != 1 || !strings.Contains(errOut, "a gateway is running on this buffer: use its admin API (--admin http://"+e.admin+")") {
		t.Fatalf("ls --config on a running gateway: exit %d\n%s", code, errOut)
	}

	// Stopped: the same commands on the buffer directly.
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("gateway exit: %v\n%s", err, p.log)
	}
	stats := cliOK(t, e.bin, "buffer", "stats", "--config", e.config)
	if !regexp.MustCompile(`retained\.uplink\.cloud\s+retained\s+cloud\s+4\s`).MatchString(stats) {
		t.Errorf("stats --config:\n%s", stats)
	}
	if list := lsJSON(t, e.bin, "--dir", e.dir+"/buffer", "--queue", "retained.uplink.cloud"); len(list) != 4 || list[0].Seq != retained[7].Seq {
		t.Errorf("ls --dir: %+v", list)
	}
	if _, errOut, code := cli(t, e.bin, "buffer", "purge", "--dir", e.dir+"/buffer", "--queue", "retained.uplink.cloud", "--all"); code != 2 ||
		!strings.Contains(errOut, "needs --config") {
		t.Errorf("purge --dir: exit %d\n%s", code, errOut)
	}
	out = cliOK(t, e.bin, "buffer", "purge", "--config", e.config, "--queue", "retained.uplink.cloud", "--id", retained[8].ID)
	if !strings.Contains(out, "purged 1 event") {
		t.Errorf("purge --config: %s", out)
	}
	out = cliOK(t, e.bin, "buffer", "replay", "--config", e.config, "--to", "cloud", "--limit", "1")
	if !strings.Contains(out, "replayed 1 event from retained.uplink.cloud to cloud") {
		t.Errorf("replay --config: %s", out)
	}
	if list := lsJSON(t, e.bin, "--dir", e.dir+"/buffer"); len(list) != 4 || list[0].Queue != "retained.uplink.cloud" ||
		list[3].Queue != "uplink.cloud" || list[3].ID != retained[7].ID || !list[3].Replayed {
		t.Errorf("after offline purge and replay: %+v", list)
	}
	// The next start delivers what the offline replay queued.
	p = startProc(t, e.bin, e.config, e.admin)
	got = arrivals(t, sink, 12)
	if got[11].ID() != retained[7].ID || got[11].Extensions()["replayed"] != true {
		t.Errorf("offline replay delivered %s", got[11])
	}
}

// readmeExampleID is the event id the README's buffer examples show.
const readmeExampleID = "01a233ce-a8ae-74f2-a6a6-f30fb5d75046"

// readmeArgs are the arguments of a README example command line (after
// "edgegate"), its example event id and configuration path replaced by a
// test's.
func readmeArgs(line, id, config string) []string {
	args := strings.Fields(line)[1:]
	for j, a := range args {
		switch a {
		case readmeExampleID:
			args[j] = id
		case "/etc/edgegate/edgegate.yaml":
			args[j] = config
		}
	}
	return args
}

// The README's `edgegate buffer` examples run, in order, against a real
// gateway holding a dead letter and a retained history: each exits 0 and
// does what its comment says. Lines with --config run after the gateway
// has stopped; the others get the test's --admin.
func TestReadmeBufferExamples(t *testing.T) {
	block := readmeBlock(t, "## Inspecting and replaying", "sh")
	lines := readmeCommands(block, "edgegate buffer ")
	if len(lines) < 6 {
		t.Fatalf("only %d edgegate buffer lines in the README block:\n%s", len(lines), block)
	}

	e := newBufferE2E(t)
	sink, p, dead := startWithDeadLetter(t, e, 3, 1)
	defer func() { p.kill() }()
	sink.Respond(nil) // the endpoint is fixed before the replay

	running := true
	for _, line := range lines {
		args := readmeArgs(line, dead.ID, e.config)
		if slices.Contains(args, "--config") {
			if running {
				p.cmd.Process.Signal(syscall.SIGTERM)
				p.cmd.Wait()
				running = false
			}
		} else {
			if !running {
				t.Fatalf("README: %q needs a running gateway after a --config example", line)
			}
			args = append(args, "--admin", e.admin)
		}
		out := cliOK(t, e.bin, args...)
		t.Logf("$ %s\n%s", line, out)
		switch args[1] {
		case "show":
			if !strings.Contains(out, `"edgegateerror"`) {
				t.Errorf("%s: no failure in the shown dead letter", line)
			}
		case "replay":
			if !strings.Contains(out, "replayed ") || strings.Contains(out, "replayed 0 ") {
				t.Errorf("%s: replayed nothing", line)
			}
		}
	}
}

// The buffer commands reach an https admin API with --cacert.
func TestBufferCommandsOverAdminTLS(t *testing.T) {
	e := newE2E(t, "builds and runs the real binary")
	ca := testpki.NewCA(t, "admin CA")
	leaf := ca.Server(t, "edgegate-admin")
	setAdmin(t, e.config, fmt.Sprintf("admin:\n  listen: %q\n  tls: {cert_file: %q, key_file: %q}\n", e.admin, leaf.CertFile, leaf.KeyFile))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	defer client.CloseIdleConnections()
	p := startProcAt(t, e.bin, e.config, "https://"+e.admin, client)
	defer p.kill()

	out := cliOK(t, e.bin, "buffer", "stats", "--admin", "https://"+e.admin, "--cacert", ca.File)
	if !strings.Contains(out, "uplink.cloud") {
		t.Errorf("stats over https:\n%s", out)
	}
	if _, errOut, code := cli(t, e.bin, "buffer", "stats", "--admin", "https://"+e.admin); code != 1 || !strings.Contains(errOut, "certificate") {
		t.Errorf("stats over https without --cacert: exit %d\n%s", code, errOut)
	}
	// A stopped-gateway command names the https URL to use instead.
	if _, errOut, _ := cli(t, e.bin, "buffer", "ls", "--config", e.config); !strings.Contains(errOut, "--admin https://"+e.admin) {
		t.Errorf("ls --config on a running gateway:\n%s", errOut)
	}
}

// With admin.tokens the buffer routes need a token, like every route but
// the probes: --token or EDGEGATE_TOKEN.
func TestBufferCommandsNeedAdminToken(t *testing.T) {
	e := startWithAdminToken(t, "buffer-token")

	for _, args := range [][]string{
		{"buffer", "stats", "--admin", e.admin},
		{"buffer", "ls", "--admin", e.admin, "--token", "wrong"},
		{"buffer", "purge", "--admin", e.admin, "--queue", "deadletter.cloud", "--all"},
		{"buffer", "replay", "--admin", e.admin, "--queue", "deadletter.cloud"},
	} {
		if _, errOut, code := cli(t, e.bin, args...); code != 1 || !strings.Contains(errOut, "401") || !strings.Contains(errOut, "EDGEGATE_TOKEN") {
			t.Errorf("%v without the right token: exit %d\n%s", args, code, errOut)
		}
	}
	cliOK(t, e.bin, "buffer", "stats", "--admin", e.admin, "--token", "buffer-token")
	cmd := exec.Command(e.bin, "buffer", "purge", "--admin", e.admin, "--queue", "deadletter.cloud", "--all")
	cmd.Env = append(os.Environ(), "EDGEGATE_TOKEN=buffer-token")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "purged 0 events") {
		t.Errorf("purge with EDGEGATE_TOKEN: %v\n%s", err, out)
	}
}
