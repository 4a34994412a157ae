package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{nil, []string{"throughput-qos0", "throughput-qos1", "latency-qos1-5000/s"}},
		{[]string{"--qos", "0"}, []string{"throughput-qos0", "latency-qos0-5000/s"}},
		{[]string{"--qos", "1", "--rate", "0"}, []string{"throughput-qos1"}},
		{[]string{"--messages", "0", "--rate", "250.5"}, []string{"latency-qos1-250.5/s"}},
	}
	for _, tt := range tests {
		c, err := parseFlags(tt.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		var got []string
		for _, s := range c.plan() {
			got = append(got, s.Name)
			if strings.HasPrefix(s.Name, "latency") && (s.Duration != 10*time.Second || s.Messages != 0) {
				t.Errorf("%v: latency run %+v", tt.args, s)
			}
		}
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%v: plan %v, want %v", tt.args, got, tt.want)
		}
	}
}

func TestParseFlagsErrors(t *testing.T) {
	_, err := parseFlags([]string{"--qos", "2", "--mode", "x", "--devices", "0", "--duration", "0"}, io.Discard)
	for _, want := range []string{"--qos: must be 0 or 1", "--mode: must be batch, binary or structured", "--devices: must be >= 1", "--duration: must be > 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
	if _, err := parseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestPrintTable(t *testing.T) {
	var b bytes.Buffer
	printTable(&b, []result{
		{Name: "throughput-qos1", QoS: 1, Mode: "batch", Devices: 100, Published: 50000, Received: 50000, EventsPerSec: 12345, P50ms: 1.5, P99ms: 20, PeakRSSMB: 48.2},
		{Name: "latency-qos1-5000/s", QoS: 1, Mode: "batch", Devices: 100, Error: "boom"},
	})
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "events/s") || !strings.Contains(lines[1], "12345") || !strings.Contains(lines[3], "ERROR: boom") {
		t.Errorf("table:\n%s", b.String())
	}
	if len(lines[0]) != len(lines[1]) || len(lines[1]) != len(lines[2]) {
		t.Errorf("columns not aligned:\n%s", b.String())
	}
}
