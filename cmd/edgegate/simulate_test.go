package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// testBroker is a mochi broker on 127.0.0.1:0 whose inline subscriber records every
// telemetry message it sees.
type testBroker struct {
	url string
	mu  sync.Mutex
	msg map[string][]telemetryMsg // by topic
	bad int
}

type telemetryMsg struct {
	Seq         int64    `json:"seq"`
	Temperature *float64 `json:"temperature"`
	Humidity    *float64 `json:"humidity"`
	TS          string   `json:"ts"`
}

func startTestBroker(t *testing.T) *testBroker {
	t.Helper()
	s := mqtttest.StartBroker(t)
	b := &testBroker{url: s.URL, msg: map[string][]telemetryMsg{}}
	err := s.Subscribe("devices/#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		var m telemetryMsg
		err := json.Unmarshal(pk.Payload, &m)
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, perr := time.Parse(time.RFC3339Nano, m.TS); err != nil || perr != nil || m.Temperature == nil || m.Humidity == nil {
			b.bad++
			return
		}
		b.msg[pk.TopicName] = append(b.msg[pk.TopicName], m)
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitTotal waits until the broker has seen n messages or 5 s have passed, and returns
// a copy of what it has.
func (b *testBroker) waitTotal(n int) (map[string][]telemetryMsg, int) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		total := 0
		for _, ms := range b.msg {
			total += len(ms)
		}
		if total >= n || time.Now().After(deadline) {
			cp := make(map[string][]telemetryMsg, len(b.msg))
			for k, v := range b.msg {
				cp[k] = append([]telemetryMsg(nil), v...)
			}
			bad := b.bad
			b.mu.Unlock()
			return cp, bad
		}
		b.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSimulateCount(t *testing.T) {
	for _, qos := range []string{"0", "1", "2"} {
		t.Run("qos"+qos, func(t *testing.T) {
			b := startTestBroker(t)
			var stdout, stderr bytes.Buffer
			err := runSub(context.Background(), "simulate", []string{
				"--broker", b.url, "--devices", "3", "--count", "25", "--rate", "0", "--qos", qos,
				"--prefix", "dev-", "--topic", "devices/{device}/telemetry",
			}, &stdout, &stderr)
			if err != nil {
				t.Fatalf("simulate: %v\nstderr: %s", err, stderr.String())
			}
			if !strings.Contains(stdout.String(), "sent=75 acked=75 errors=0") {
				t.Errorf("summary = %q", stdout.String())
			}
			got, bad := b.waitTotal(75)
			if bad != 0 {
				t.Errorf("%d malformed payloads", bad)
			}
			for _, dev := range []string{"dev-001", "dev-002", "dev-003"} {
				ms := got["devices/"+dev+"/telemetry"]
				if len(ms) != 25 {
					t.Errorf("%s: got %d messages, want 25", dev, len(ms))
					continue
				}
				seen := map[int64]bool{}
				for _, m := range ms {
					seen[m.Seq] = true
				}
				for seq := int64(1); seq <= 25; seq++ {
					if !seen[seq] {
						t.Errorf("%s: seq %d missing", dev, seq)
					}
				}
			}
		})
	}
}

func TestSimulateRateAndDuration(t *testing.T) {
	b := startTestBroker(t)
	var stdout, stderr bytes.Buffer
	start := time.Now()
	// 100 msg/s over 4 devices for 500 ms: about 50 messages; the run must stop by itself.
	err := runSub(context.Background(), "simulate", []string{
		"--broker", b.url, "--devices", "4", "--rate", "100", "--duration", "500ms", "--progress", "100ms",
	}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("simulate: %v\nstderr: %s", err, stderr.String())
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("run took %s, want it to stop after --duration", el)
	}
	if !strings.Contains(stderr.String(), "rate=") {
		t.Errorf("no progress line on stderr: %q", stderr.String())
	}
	got, _ := b.waitTotal(1)
	total := 0
	for _, ms := range got {
		total += len(ms)
	}
	// Loose bounds: the schedule allows at most ~50 + 4 messages; zero means no pacing at all.
	if total == 0 || total > 60 {
		t.Errorf("got %d messages in 500 ms at 100 msg/s", total)
	}
}

// --duration holds when the broker goes away mid-run (issue 12): publishes
// that can no longer be acknowledged fail after --timeout each, all at once,
// and the run ends by --duration + --timeout with an error.
func TestSimulateDurationWhenBrokerGone(t *testing.T) {
	b := mqtttest.StartBroker(t)
	time.AfterFunc(300*time.Millisecond, b.Close)
	var stdout, stderr bytes.Buffer
	start := time.Now()
	err := runSub(context.Background(), "simulate", []string{
		"--broker", b.URL, "--devices", "2", "--rate", "100", "--duration", "1s", "--timeout", "1s", "--progress", "0",
	}, &stdout, &stderr)
	if el := time.Since(start); el > 5*time.Second { // slack for a loaded machine; without the fix it takes 30 s
		t.Errorf("run took %s, want it to stop by --duration 1s + --timeout 1s", el)
	}
	if err == nil || !strings.Contains(err.Error(), "publishes failed") {
		t.Errorf("err = %v, want failed publishes\nstdout: %s", err, stdout.String())
	}
}

func TestSimulateCancel(t *testing.T) {
	b := startTestBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	var stdout, stderr bytes.Buffer
	err := runSub(ctx, "simulate", []string{"--broker", b.url, "--devices", "2", "--rate", "50", "--progress", "0"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("interrupted simulate should end cleanly, got %v", err)
	}
	if !strings.Contains(stdout.String(), "errors=0") {
		t.Errorf("summary = %q", stdout.String())
	}
}

func TestSimulateConnectError(t *testing.T) {
	// Nothing listens on port 1 of 127.0.0.1.
	var stdout, stderr bytes.Buffer
	err := runSub(context.Background(), "simulate", []string{"--broker", "tcp://127.0.0.1:1", "--devices", "2", "--count", "1", "--timeout", "2s"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "connect sim-001") {
		t.Fatalf("err = %v, want a connect error naming the device", err)
	}
}

func TestSimulateFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string // substring of the error; "" = no error
	}{
		{[]string{"-h"}, ""},
		{[]string{"--devices", "0"}, "--devices: must be between"},
		{[]string{"--rate", "-1"}, "--rate: must be >= 0"},
		{[]string{"--qos", "3"}, "--qos: must be 0, 1 or 2"},
		{[]string{"--topic", "devices/+/x"}, "--topic: must be"},
		{[]string{"--count", "-2", "--inflight", "0"}, "--inflight: must be >= 1"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--nope"}, "unknown flag: --nope"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			err := runSub(context.Background(), "simulate", tt.args, io.Discard, io.Discard)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
