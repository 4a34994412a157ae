package gateway

import (
	"strconv"
	"testing"
	"time"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/mqtt"
)

// perEvent is the per-event path of Handle up to the buffer: the resend
// mark, the topic mapping, the rules, the encoding and the records, for
// the config in testdata/perevent.yaml.
type perEvent struct {
	g   *Gateway
	l   *live
	msg mqtt.Message
}

func newPerEvent(t testing.TB) *perEvent {
	t.Helper()
	c, err := LoadFile("testdata/perevent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"dev":"d-042","seq":` + strconv.Itoa(1234) + `,"sent_ns":1764640000000000000,"temperature":21.5}`)
	return &perEvent{
		g:   newGateway(c.Config, Options{}),
		l:   newLive(c),
		msg: mqtt.Message{Topic: "devices/d-042/telemetry", Payload: payload, QoS: 1, PacketID: 7, ClientID: "bench-d-042"},
	}
}

// run handles one message and returns its records.
func (p *perEvent) run(t testing.TB, now time.Time) []buffer.Record {
	_ = resendMark(p.msg)
	e, err := p.l.mapMessage(p.msg, now, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := p.g.records(p.l, &e, p.msg.Topic, p.msg.ClientID, now)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// perEventAllocBudget is what the per-event path may allocate: measure
// with BenchmarkPerEvent before raising it, and say why in the commit.
const perEventAllocBudget = 22

// The per-event path stays within its allocation budget: every allocation
// is garbage the collector must chase at 20k events/s (GC was ~12% of the
// gateway's CPU at full load, issue 13).
func TestPerEventAllocations(t *testing.T) {
	p := newPerEvent(t)
	now := time.Now()
	if recs := p.run(t, now); len(recs) != 1 || recs[0].Queue != queueName("cloud") || len(recs[0].Data) == 0 {
		t.Fatalf("records %+v: want one for uplink cloud", recs)
	}
	if raceEnabled {
		t.Skip("allocations differ under the race detector; go test without -race checks the budget")
	}
	got := testing.AllocsPerRun(200, func() { p.run(t, now) })
	if got > perEventAllocBudget {
		t.Errorf("the per-event path (resend mark, mapping, 10 rules, encoding, records) allocates %.0f times per event; its budget is %d. "+
			"Find the new allocations with go test -run '^$' -bench BenchmarkPerEvent -memprofile mem.out ./gateway, "+
			"remove them or raise perEventAllocBudget and say why", got, perEventAllocBudget)
	}
	t.Logf("%.0f allocations per event (budget %d)", got, perEventAllocBudget)
}

// BenchmarkPerEvent: one message through the per-event path up to the
// buffer (TestPerEventAllocations budgets its allocations).
func BenchmarkPerEvent(b *testing.B) {
	p := newPerEvent(b)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		p.run(b, now)
	}
}
