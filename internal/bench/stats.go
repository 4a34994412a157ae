package bench

import (
	"math"
	"slices"
	"time"

	"github.com/edgegate/edgegate/internal/devices"
)

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of sorted, or 0 for
// an empty slice: the smallest value with at least p% of the values at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// latencySummary holds the percentiles of one run's latencies.
type latencySummary struct {
	P50, P99, Max time.Duration
}

func summarizeLatencies(lat []time.Duration) latencySummary {
	s := slices.Clone(lat)
	slices.Sort(s)
	return latencySummary{P50: percentile(s, 50), P99: percentile(s, 99), Max: percentile(s, 100)}
}

// accounting compares what the devices published with what the receiver got.
type accounting struct {
	Expected   int64 // messages published (seq 1..Published of every device)
	Received   int64 // distinct published messages that arrived
	Lost       int64 // published, never arrived
	LostAcked  int64 // lost although the device got its ack (QoS >= 1: a gateway bug)
	Duplicated int64 // extra copies of arrived messages
	Unexpected int64 // distinct device messages that arrived but were never published
}

// account matches the receiver's counts against the devices' results.
func account(devs []devices.DeviceResult, counts map[eventKey]uint32) accounting {
	var a accounting
	matched := 0
	for _, d := range devs {
		for seq := int64(1); seq <= d.Published; seq++ {
			a.Expected++
			c := counts[eventKey{d.ID, seq}]
			if c == 0 {
				a.Lost++
				if !d.Failed[seq] {
					a.LostAcked++
				}
				continue
			}
			matched++
			a.Received++
			a.Duplicated += int64(c) - 1
		}
	}
	a.Unexpected = int64(len(counts) - matched)
	return a
}
