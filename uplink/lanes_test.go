package uplink

import (
	"fmt"
	"testing"
)

// TestLanesSchedule runs lanes in lock-step rounds (every worker takes,
// then every request completes) and checks the number of rounds a batch
// takes, max(events/workers, longest lane) rounded up, and that each
// source's records come out in batch order, one at a time.
func TestLanesSchedule(t *testing.T) {
	tests := []struct {
		name    string
		sources []int // events per source, interleaved in the batch
		workers int
		rounds  int
	}{
		{"even, more sources than workers", repeat(5, 100), 64, 8}, // whole sources: 10
		{"even, fewer workers", repeat(5, 100), 32, 16},            // whole sources: 20
		{"one long source", append([]int{10}, repeat(1, 9)...), 4, 10},
		{"long and short", append(repeat(6, 3), repeat(2, 9)...), 4, 9}, // whole sources: 12
		{"one source", []int{7}, 8, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var events []int // source of each record, interleaved
			left := append([]int(nil), tt.sources...)
			for more := true; more; {
				more = false
				for s := range left {
					if left[s] > 0 {
						events, left[s], more = append(events, s), left[s]-1, true
					}
				}
			}
			recs := testRecords(t, len(events), 1)
			for i, s := range events {
				recs[i].Source = fmt.Sprintf("src%d", s)
			}
			l := newLanes(recs)
			last := map[string]int{}
			rounds, sent := 0, 0
			for {
				var taken [][2]int
				for range tt.workers {
					if l.idle.Len() == 0 {
						break
					}
					j, i, ok := l.take()
					if !ok {
						t.Fatal("take: nothing while lanes are idle")
					}
					taken = append(taken, [2]int{j, i})
				}
				if len(taken) == 0 {
					break
				}
				rounds++
				seen := map[int]bool{}
				for _, ji := range taken {
					if seen[ji[0]] {
						t.Fatalf("round %d: two requests of lane %d at once", rounds, ji[0])
					}
					seen[ji[0]] = true
					src := recs[ji[1]].Source
					if p, ok := last[src]; ok && ji[1] <= p {
						t.Fatalf("%s: record %d after %d", src, ji[1], p)
					}
					last[src] = ji[1]
					sent++
				}
				for _, ji := range taken {
					l.done(ji[0])
				}
			}
			if _, _, ok := l.take(); ok {
				t.Error("take after the last record")
			}
			if sent != len(recs) || rounds != tt.rounds {
				t.Errorf("sent %d of %d in %d rounds, want %d", sent, len(recs), rounds, tt.rounds)
			}
		})
	}
}

// TestLanesStop: after stop, take hands out nothing, even with lanes idle.
func TestLanesStop(t *testing.T) {
	l := newLanes(testRecords(t, 10, 5))
	if _, _, ok := l.take(); !ok {
		t.Fatal("take before stop")
	}
	l.stop()
	if _, _, ok := l.take(); ok {
		t.Error("take after stop")
	}
}

func repeat(v, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = v
	}
	return s
}
