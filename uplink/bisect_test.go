package uplink

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/edgegate/edgegate/internal/ceconform"
)

// fakeEndpoint fails permanently for any range holding a poison index and
// retryably every failEvery-th call.
type fakeEndpoint struct {
	poison    map[int]bool
	failEvery int
	named     bool // name the first poison record with a *RecordError

	calls     int
	delivered map[int]int
}

func (f *fakeEndpoint) send(lo, hi int) error {
	f.calls++
	if f.failEvery > 0 && f.calls%f.failEvery == 0 {
		return &Error{Err: errors.New("503"), Retryable: true, StatusCode: 503}
	}
	for i := lo; i < hi; i++ {
		if f.poison[i] {
			if f.named {
				return &Error{Err: &RecordError{Index: i - lo, Err: errors.New("bad event")}, StatusCode: 400}
			}
			return &Error{Err: errors.New("400 Bad Request"), StatusCode: 400}
		}
	}
	for i := lo; i < hi; i++ {
		f.delivered[i]++
	}
	return nil
}

func TestBisect(t *testing.T) {
	cases := []struct {
		n         int
		poison    []int
		failEvery int
		named     bool
	}{
		{n: 0},
		{n: 1},
		{n: 1, poison: []int{0}},
		{n: 500},
		{n: 500, poison: []int{0}},
		{n: 500, poison: []int{499}},
		{n: 500, poison: []int{3, 17, 18, 250, 499}, failEvery: 4},
		{n: 500, poison: []int{3, 17, 18, 250, 499}, named: true},
		{n: 7, poison: []int{0, 1, 2, 3, 4, 5, 6}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d/%v/%d/%v", tc.n, tc.poison, tc.failEvery, tc.named), func(t *testing.T) {
			f := &fakeEndpoint{poison: map[int]bool{}, failEvery: tc.failEvery, named: tc.named, delivered: map[int]int{}}
			for _, p := range tc.poison {
				f.poison[p] = true
			}
			b := NewBisect(tc.n)
			retries := 0
			for lo, hi, ok := b.Next(); ok; lo, hi, ok = b.Next() {
				if f.calls > 10*tc.n+10 {
					t.Fatal("no progress")
				}
				if retry, _ := b.Result(f.send(lo, hi)); retry {
					retries++
				}
			}
			var got []int
			for _, p := range b.Poisoned() {
				got = append(got, p.Index)
				if p.Err == nil {
					t.Errorf("poison %d without error", p.Index)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.poison) {
				t.Fatalf("poisoned %v, want %v", got, tc.poison)
			}
			for i := range tc.n {
				if !f.poison[i] && f.delivered[i] != 1 {
					t.Errorf("record %d delivered %d times", i, f.delivered[i])
				}
			}
			if tc.failEvery > 0 && retries == 0 {
				t.Error("no retryable failure exercised")
			}
			t.Logf("%d calls for %d records, %d poison", f.calls, tc.n, len(tc.poison))
		})
	}
}

// TestPartialBatch: a receiver that takes the good events of a batch and
// refuses the rest (207 after storing the good ones, or 400 storing none).
// Batch requests are all-or-nothing for the sender; bisecting isolates the
// poison events and every good one arrives (some twice, same id).
func TestPartialBatch(t *testing.T) {
	records := testRecords(t, 100, 5)
	poison := map[string]bool{"evt-0007": true, "evt-0042": true, "evt-0043": true, "evt-0099": true}
	for _, tc := range []struct {
		mode   string
		status int
	}{{ModeBatch, http.StatusMultiStatus}, {ModeBatch, http.StatusBadRequest}, {ModeBinary, http.StatusUnprocessableEntity}} {
		t.Run(fmt.Sprintf("%s/%d", tc.mode, tc.status), func(t *testing.T) {
			var mu sync.Mutex
			got := map[string]int{}
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, evs []ceconform.Event) int {
				bad := false
				for _, v := range evs {
					bad = bad || poison[v.Attrs["id"]]
				}
				if bad && tc.status != http.StatusMultiStatus {
					return tc.status
				}
				mu.Lock()
				defer mu.Unlock()
				for _, v := range evs {
					if !poison[v.Attrs["id"]] {
						got[v.Attrs["id"]]++
					}
				}
				if bad {
					return tc.status
				}
				return http.StatusOK
			})
			s := newTestSender(t, rc.URL(), tc.mode, nil)
			b := NewBisect(len(records))
			requests := 0
			for lo, hi, ok := b.Next(); ok; lo, hi, ok = b.Next() {
				requests++
				if retry, _ := b.Result(s.Send(context.Background(), records[lo:hi])); retry {
					t.Fatal("unexpected retryable error")
				}
			}
			var ids []string
			for _, p := range b.Poisoned() {
				ids = append(ids, fmt.Sprintf("evt-%04d", p.Index))
				var ue *Error
				if !errors.As(p.Err, &ue) || ue.StatusCode != tc.status {
					t.Errorf("poison %d: error %v", p.Index, p.Err)
				}
			}
			slices.Sort(ids)
			if want := []string{"evt-0007", "evt-0042", "evt-0043", "evt-0099"}; !slices.Equal(ids, want) {
				t.Fatalf("poisoned %v, want %v", ids, want)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != len(records)-len(poison) {
				t.Fatalf("%d good events arrived, want %d", len(got), len(records)-len(poison))
			}
			t.Logf("%d Send calls", requests)
		})
	}
}

// ExampleBisect isolates the one record an endpoint refuses.
func ExampleBisect() {
	records := []string{"a", "b", "POISON", "d", "e"}
	send := func(rs []string) error {
		if slices.Contains(rs, "POISON") {
			return &Error{Err: errors.New("400 Bad Request"), StatusCode: 400}
		}
		fmt.Println("delivered", rs)
		return nil
	}
	b := NewBisect(len(records))
	for lo, hi, ok := b.Next(); ok; lo, hi, ok = b.Next() {
		b.Result(send(records[lo:hi]))
	}
	for _, p := range b.Poisoned() {
		fmt.Println("dead-letter", records[p.Index], p.Err)
	}
	// Output:
	// delivered [a b]
	// delivered [d e]
	// dead-letter POISON 400 Bad Request
}

func TestBisectGiveUp(t *testing.T) {
	b := NewBisect(4)
	lo, hi, ok := b.Next()
	if !ok || lo != 0 || hi != 4 {
		t.Fatalf("Next = %d, %d, %v", lo, hi, ok)
	}
	cause := errors.New("still down")
	b.GiveUp(cause)
	if _, _, ok := b.Next(); ok {
		t.Fatal("range still pending after GiveUp")
	}
	if p := b.Poisoned(); len(p) != 4 || p[3].Index != 3 || p[0].Err != cause {
		t.Fatalf("Poisoned = %+v", p)
	}
}
