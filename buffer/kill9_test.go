package buffer

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// kill9Dir names, in the environment of a re-run of this test binary, the
// buffer the child appends to until it is killed.
const kill9Dir = "EDGEGATE_KILL9_DIR"

// kill -9 at random moments while records are appended (Badger flushing
// memtables and compacting all the while): every time, the buffer opens
// again by itself and holds every record whose Append returned. More
// rounds: EDGEGATE_KILL9_ROUNDS=200.
func TestKill9Loop(t *testing.T) {
	if dir := os.Getenv(kill9Dir); dir != "" {
		kill9Child(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("kills a child process many times")
	}
	rounds := 8
	if n, err := strconv.Atoi(os.Getenv("EDGEGATE_KILL9_ROUNDS")); err == nil {
		rounds = n
	}
	cfg := testConfig(t)
	next := 0 // the first sequence number of the next child
	for round := range rounds {
		acked := kill9Round(t, cfg.Dir, next, time.Duration(rand.IntN(400))*time.Millisecond)
		b, err := Open(cfg, nil, nil)
		if err != nil {
			t.Fatalf("round %d: the buffer did not open after kill -9: %v", round, err)
		}
		seen := map[int]bool{}
		q := queueT(t, b, "q")
		for n := b.Stats().Queues["q"].Records; n > 0; {
			bt := nextT(t, q, 10000, 0)
			for _, r := range bt.Records() {
				seq, _ := strconv.Atoi(strings.TrimSpace(string(r[:12])))
				seen[seq] = true
				next = max(next, seq+1)
				n--
			}
			if err := bt.Ack(); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		for seq := range acked {
			if !seen[seq] {
				t.Fatalf("round %d: record %d was acknowledged but is gone (%d acknowledged)", round, seq, len(acked))
			}
		}
		t.Logf("round %d: %d records, %d acknowledged", round, len(seen), len(acked))
	}
}

// kill9Round runs a child appending records numbered from first and kills
// it after the delay that follows its first acknowledged append; it returns
// the numbers the child had acknowledged.
func kill9Round(t *testing.T, dir string, first int, delay time.Duration) map[int]bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Loop$", "-test.count=1")
	cmd.Env = append(os.Environ(), kill9Dir+"="+dir, "EDGEGATE_KILL9_FIRST="+strconv.Itoa(first))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[int]bool{}
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var from, to int
			if _, err := fmt.Sscanf(sc.Text(), "acked %d %d", &from, &to); err == nil {
				if len(acked) == 0 {
					close(started)
				}
				for s := from; s <= to; s++ {
					acked[s] = true
				}
			}
		}
	}()
	select {
	case <-started:
	case <-done:
		_ = cmd.Wait()
		t.Fatalf("the child exited before appending")
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("the child appended nothing within 60s")
	}
	time.Sleep(delay)
	_ = cmd.Process.Kill()
	<-done
	_ = cmd.Wait()
	return acked
}

// kill9Child appends batches of 100 records of 1000 bytes to the buffer in
// dir, writing "acked FROM TO" once each Append returns, until killed.
func kill9Child(t *testing.T, dir string) {
	cfg := DefaultConfig()
	cfg.Dir = dir
	cfg.MinFreeBytes = MinFreeFloor
	b, err := Open(cfg, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	ctx := context.Background()
	go b.Run(ctx)
	seq, _ := strconv.Atoi(os.Getenv("EDGEGATE_KILL9_FIRST"))
	pad := strings.Repeat("x", 988)
	for {
		recs := make([]Record, 100)
		for i := range recs {
			recs[i] = Record{Queue: "q", Data: fmt.Appendf(nil, "%12d%s", seq+i, pad)}
		}
		if err := b.Append(ctx, recs, true); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("acked %d %d\n", seq, seq+99)
		seq += 100
	}
}
