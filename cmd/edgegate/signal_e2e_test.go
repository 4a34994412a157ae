package main

import (
	"errors"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// The README's promise: SIGTERM stops gracefully, finishing in-flight sends
// within shutdown_timeout; a second signal exits at once. The uplink here
// holds every request for 30 s, so the graceful stop would wait for it.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	e := newE2E(t, "builds the real binary")
	ln, err := net.Listen("tcp", e.uplink)
	if err != nil {
		t.Fatal(err)
	}
	arrived := make(chan struct{}, 100)
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-time.After(30 * time.Second):
		}
	})}
	go srv.Serve(ln)
	defer func() { close(release); srv.Close() }()

	p := startProc(t, e.bin, e.config, e.admin)
	defer p.kill()
	dev := mqtttest.Connect(t, "tcp://"+e.mqtt, "slow-1")
	mqtttest.Publish(t, dev, "devices/slow-1/telemetry", 1, `{"t":1}`)
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatalf("no request reached the uplink:\n%s", p.log)
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	// Send the second signal only once the graceful stop is waiting for
	// the send in flight: earlier, it would count as the first.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.log.String(), "finishing in-flight sends"); {
		if time.Now().After(deadline) {
			t.Fatalf("no graceful stop 10 s after SIGTERM:\n%s", p.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Errorf("exit after a second SIGTERM: %v, want exit status 130", err)
		}
		if !strings.Contains(p.log.String(), "second terminated: exiting now") {
			t.Errorf("no word of the second signal in the log:\n%s", p.log)
		}
		t.Logf("exited %v after the second signal", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatalf("still running 5 s after a second SIGTERM:\n%s", p.log)
	}
}
