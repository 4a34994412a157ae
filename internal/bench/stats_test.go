package bench

import (
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/devices"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(5), 99, 5 * time.Millisecond},
		{"p50 of 1..100", ms(hundred...), 50, 50 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100 is max", ms(hundred...), 100, 100 * time.Millisecond},
		{"p50 of 4", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 4", ms(1, 2, 3, 4), 99, 4 * time.Millisecond},
		{"tiny p", ms(1, 2, 3), 0.0001, time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.sorted, tt.p); got != tt.want {
			t.Errorf("%s: percentile(%v) = %s, want %s", tt.name, tt.p, got, tt.want)
		}
	}
	s := summarizeLatencies(ms(9, 1, 5, 3, 7))
	if s.P50 != 5*time.Millisecond || s.P99 != 9*time.Millisecond || s.Max != 9*time.Millisecond {
		t.Errorf("summary of unsorted input = %+v", s)
	}
}

func TestAccount(t *testing.T) {
	devs := []devices.DeviceResult{
		{ID: "d-001", Published: 5},
		{ID: "d-002", Published: 3, Failed: map[int64]bool{2: true, 3: true}},
		{ID: "d-003", Published: 0},
	}
	counts := map[eventKey]uint32{
		{"d-001", 1}: 1, {"d-001", 2}: 3, {"d-001", 4}: 1, {"d-001", 5}: 2, // 3 lost (acked)
		{"d-002", 1}: 1, {"d-002", 3}: 1, // 2 lost (its publish failed)
		{"d-001", 6}: 1, {"d-009", 1}: 4, // never published
	}
	got := account(devs, counts)
	want := accounting{Expected: 8, Received: 6, Lost: 2, LostAcked: 1, Duplicated: 3, Unexpected: 2}
	if got != want {
		t.Errorf("account = %+v, want %+v", got, want)
	}
	if a := account(nil, nil); a != (accounting{}) {
		t.Errorf("empty account = %+v", a)
	}
}
