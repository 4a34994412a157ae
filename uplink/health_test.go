package uplink

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/ceconform"
)

// Health follows the delivery loop: idle before any send, delivering
// while a batch is in hand, failing from a retryable failure until the
// next success, with the last error and when things last went right and
// wrong.
func TestHealth(t *testing.T) {
	var calls atomic.Int32
	arrived := make(chan int32)
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, evs []ceconform.Event) int {
		n := calls.Add(1)
		arrived <- n
		<-release
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	d, _ := newTestDelivery(t, newTestSender(t, rc.URL(), ModeBatch, nil), nil)
	if h := d.Health(); h.State != StateIdle || !h.LastSuccess.IsZero() || !h.LastFailure.IsZero() || h.LastError != "" {
		t.Fatalf("before any send: %+v", h)
	}
	records := testRecords(t, 5, 1)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := d.Deliver(context.Background(), context.Background(), testBatch{events: records, appended: time.Now()})
		done <- err
	}()

	<-arrived
	if h := d.Health(); h.State != StateDelivering || h.ConsecutiveFailures != 0 {
		t.Errorf("first send in flight: %+v", h)
	}
	release <- struct{}{}
	<-arrived // the retry
	h := d.Health()
	if h.State != StateFailing || h.ConsecutiveFailures != 1 || !strings.Contains(h.LastError, "503") ||
		h.LastFailure.Before(start) || !h.LastSuccess.IsZero() {
		t.Errorf("after a 503: %+v", h)
	}
	release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	h = d.Health()
	if h.State != StateIdle || h.ConsecutiveFailures != 0 || h.LastSuccess.Before(h.LastFailure) ||
		!strings.Contains(h.LastError, "503") || h.Delivered != 5 {
		t.Errorf("after the batch was delivered: %+v", h)
	}
}
