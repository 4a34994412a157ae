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
	perEvent  bool // like binary mode: records before the failure are accepted

	calls     int
	delivered map[int]int
}

func (f *fakeEndpoint) send(idx []int) error {
	f.calls++
	if f.perEvent {
		return f.sendEach(idx)
	}
	if f.failEvery > 0 && f.calls%f.failEvery == 0 {
		return &Error{Err: errors.New("503"), Retryable: true, StatusCode: 503}
	}
	for p, i := range idx {
		if f.poison[i] {
			if f.named {
				return &Error{Err: &RecordError{Index: p, Err: errors.New("bad event")}, StatusCode: 400}
			}
			return &Error{Err: errors.New("400 Bad Request"), StatusCode: 400}
		}
	}
	for _, i := range idx {
		f.delivered[i]++
	}
	return nil
}

// sendEach answers each record on its own, in order, until one fails: a
// poison record permanently, and the second one retryably every
// failEvery-th call. The error names the failing record and the accepted
// ones.
func (f *fakeEndpoint) sendEach(idx []int) error {
	var accepted []int
	for p, i := range idx {
		var e *Error
		switch {
		case f.poison[i]:
			e = &Error{Err: &RecordError{Index: p, Err: errors.New("bad event")}, StatusCode: 400}
		case f.failEvery > 0 && f.calls%f.failEvery == 0 && p == 1:
			e = &Error{Err: &RecordError{Index: p, Err: errors.New("busy")}, Retryable: true, StatusCode: 503}
		}
		if e != nil {
			e.Accepted = accepted
			return e
		}
		f.delivered[i]++
		accepted = append(accepted, p)
	}
	return nil
}

func TestBisect(t *testing.T) {
	cases := []struct {
		n         int
		poison    []int
		failEvery int
		named     bool
		perEvent  bool
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
		{n: 500, poison: []int{3, 17, 18, 250, 499}, perEvent: true},
		{n: 500, poison: []int{3, 17, 18, 250, 499}, failEvery: 2, perEvent: true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d/%v/%d/%v/%v", tc.n, tc.poison, tc.failEvery, tc.named, tc.perEvent), func(t *testing.T) {
			f := &fakeEndpoint{poison: map[int]bool{}, failEvery: tc.failEvery, named: tc.named, perEvent: tc.perEvent, delivered: map[int]int{}}
			for _, p := range tc.poison {
				f.poison[p] = true
			}
			b := newBisect(tc.n)
			retries := 0
			for idx, ok := b.next(); ok; idx, ok = b.next() {
				if f.calls > 10*tc.n+10 {
					t.Fatal("no progress")
				}
				if _, retry, _ := b.result(f.send(idx)); retry {
					retries++
				}
			}
			var got []int
			for _, p := range b.poisoned() {
				got = append(got, p.index)
				if p.err == nil {
					t.Errorf("poison %d without error", p.index)
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
			b := newBisect(len(records))
			requests := 0
			out := &outgoing{events: records}
			for idx, ok := b.next(); ok; idx, ok = b.next() {
				requests++
				if _, retry, _ := b.result(s.Send(context.Background(), out.pick(idx))); retry {
					t.Fatal("unexpected retryable error")
				}
			}
			var ids []string
			for _, p := range b.poisoned() {
				ids = append(ids, fmt.Sprintf("evt-%04d", p.index))
				var ue *Error
				if !errors.As(p.err, &ue) || ue.StatusCode != tc.status {
					t.Errorf("poison %d: error %v", p.index, p.err)
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

func TestBisectGiveUp(t *testing.T) {
	b := newBisect(4)
	idx, ok := b.next()
	if !ok || !slices.Equal(idx, []int{0, 1, 2, 3}) {
		t.Fatalf("next = %v, %v", idx, ok)
	}
	cause := errors.New("still down")
	b.giveUp(cause)
	if _, ok := b.next(); ok {
		t.Fatal("range still pending after GiveUp")
	}
	if p := b.poisoned(); len(p) != 4 || p[3].index != 3 || p[0].err != cause {
		t.Fatalf("Poisoned = %+v", p)
	}
}
