package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/cloudevent"
)

// The startup run (issue 13: "accept device connections quickly even with
// a large backlog on disk") writes --startup events into a fresh buffer
// directory through the buffer package, as the gateway would have stored
// them during an outage, then starts the binary on it and measures from
// exec: the MQTT listener accepting a TCP connection, /readyz answering
// 200, the resident memory once ready, and, with the receiver up from the
// start, the drain for --startup-drain: its rate and the peak resident
// memory (anonymous and file-backed apart: Badger maps its files).

// startupQueue is the queue of the bench config's uplink "cloud": the
// gateway names an uplink's queue "uplink." + its name. (If that changed,
// nothing would drain and the run would fail.)
const startupQueue = "uplink.cloud"

// startupMaxBytes is buffer.max_bytes for a startup run of n events:
// room for all of them, so the gateway drops none.
func startupMaxBytes(n int64) string {
	return fmt.Sprintf("%dMiB", max(1024, n*2048>>20))
}

// fillBatch is the events per Append while filling: large group commits
// (an fsync each) make filling fast.
const fillBatch = 1000

// fillWorkers append concurrently, so commits overlap with encoding.
const fillWorkers = 4

// fillBuffer stores n events of devs devices in the buffer at dir, in the
// gateway's record format: the CloudEvent of each device message as the
// bench config maps it, encoded for the buffer, with the resend mark of a
// QoS 1 message. Device payloads are the bench devices' own (sent_ns is
// the fill time), so the recorder counts them as they drain.
func fillBuffer(ctx context.Context, dir string, n int64, devs int) error {
	mapper, err := cloudevent.Compile(cloudevent.Config{Topics: []cloudevent.Topic{{
		Match: "devices/{device}/{kind}", Source: "/edgegate/{gateway_id}/devices/{device}",
		Type: "io.edgegate.device.{kind}", Subject: "{device}",
	}}}, "bench")
	if err != nil {
		return err
	}
	cfg := buffer.DefaultConfig()
	cfg.Dir = dir
	cfg.MaxBytes = 1 << 40 // no bound while filling
	buf, err := buffer.Open(cfg, nil, nil)
	if err != nil {
		return fmt.Errorf("fill buffer: %w", err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	runDone := make(chan error, 1)
	go func() { runDone <- buf.Run(runCtx) }()

	var next atomic.Int64 // events handed out to workers
	var wg sync.WaitGroup
	errs := make([]error, fillWorkers)
	for w := range fillWorkers {
		wg.Go(func() {
			for ctx.Err() == nil {
				from := next.Add(fillBatch) - fillBatch
				if from >= n {
					return
				}
				recs, marks, err := fillRecords(mapper, from, min(n, from+fillBatch), devs)
				if err == nil {
					err = buf.Append(ctx, recs, true, marks...)
				}
				if err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	stop()
	err = errors.Join(append(errs, ctx.Err(), <-runDone, buf.Close())...)
	if err != nil {
		return fmt.Errorf("fill buffer: %w", err)
	}
	return nil
}

// fillRecords returns events from to to (exclusive): event i is message
// i/devs+1 of device i%devs, published at QoS 1 as the bench devices do.
func fillRecords(mapper *cloudevent.Mapper, from, to int64, devs int) ([]buffer.Record, []buffer.Mark, error) {
	recs := make([]buffer.Record, 0, to-from)
	marks := make([]buffer.Mark, 0, to-from)
	cfg := loadConfig("", benchOptions{Devices: devs}, runSpec{QoS: 1})
	now := time.Now()
	for i := from; i < to; i++ {
		id := cfg.DeviceID(int(i % int64(devs)))
		seq := i/int64(devs) + 1
		topic, payload := cfg.TopicFor(id), devicePayload(id, seq, now.UnixNano(), 0)
		clientID := cfg.ClientIDPrefix + id
		e, err := mapper.Map(cloudevent.Message{
			Topic: topic, Payload: payload, QoS: 1, ClientID: clientID, AuthMethod: "anonymous", Received: now,
		})
		if err != nil {
			return nil, nil, err
		}
		recs = append(recs, buffer.Record{Queue: startupQueue, Data: cloudevent.Encode(&e)})
		// The gateway's resend mark: client id and packet id, and a hash
		// of topic and payload.
		key := binary.BigEndian.AppendUint16(append([]byte(clientID), 0), uint16(seq))
		h := fnv.New64a()
		h.Write([]byte(topic))
		h.Write([]byte{0})
		h.Write(payload)
		marks = append(marks, buffer.Mark{Key: key, Value: h.Sum64()})
	}
	return recs, marks, nil
}

// runStartup fills a buffer with spec.Startup events, starts edgegate on
// it with the receiver up, and measures its startup and the drain.
func runStartup(ctx context.Context, o benchOptions, spec runSpec) result {
	start := time.Now()
	b := &bench{o: o, spec: spec, res: result{Name: spec.Name, QoS: 1, Mode: o.Mode, Devices: o.Devices, StartupEvents: spec.Startup}}
	if err := b.runStartup(ctx); err != nil {
		b.fail(err)
	}
	b.close()
	b.res.WallSeconds = time.Since(start).Seconds()
	return b.res
}

func (b *bench) runStartup(ctx context.Context) error {
	if err := b.setUp(); err != nil {
		return err
	}
	r := &b.res
	fillStart := time.Now()
	b.logf("writing %d events into the buffer", b.spec.Startup)
	if err := fillBuffer(ctx, b.dataDir(), b.spec.Startup, b.o.Devices); err != nil {
		return err
	}
	r.FillSec = time.Since(fillStart).Seconds()
	r.Published = b.spec.Startup
	r.BufferDiskMB = float64(dirSize(b.dataDir())) / (1 << 20)
	b.logf("wrote %d events (%.0f MiB on disk) in %.1fs; starting edgegate", b.spec.Startup, r.BufferDiskMB, r.FillSec)

	exec := time.Now()
	gw, err := startGateway(b.o.Edgegate, b.configPath(), filepath.Join(b.dir, "edgegate.log"), b.o.Env)
	if err != nil {
		return err
	}
	b.gw = gw
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := b.gw.waitListening(waitCtx, b.mqttAddr); err != nil {
		return err
	}
	r.ListenMs = ms(time.Since(exec))
	if err := b.gw.waitReadyEvery(waitCtx, b.admin, 2*time.Millisecond); err != nil {
		return err
	}
	ready := time.Now()
	r.ReadyMs = ms(ready.Sub(exec))
	mem, err := readMem(b.gw.pid())
	if err != nil {
		return err
	}
	atReady, err := readProcStats(b.gw.pid())
	if err != nil {
		return err
	}
	r.ReadyRSSMB, r.ReadyFileMB = mb(mem.RSS), mb(mem.File)
	b.logf("listening after %.0f ms, ready after %.0f ms, RSS %.1f MB (%.1f MB file-backed); draining for up to %s",
		r.ListenMs, r.ReadyMs, r.ReadyRSSMB, r.ReadyFileMB, b.o.StartupDrain)

	peak, err := b.drainStartup(ctx, ready, mem)
	if err != nil {
		return err
	}
	r.DrainAnonMB, r.DrainFileMB = mb(peak.Anon), mb(peak.File)
	after, err := readProcStats(b.gw.pid())
	if err != nil {
		return err
	}
	r.PeakRSSMB = mb(after.PeakRSS)
	// CPU and disk writes of the drain: acks delete records, compactions
	// rewrite tables.
	r.CPUSeconds = (after.CPU - atReady.CPU).Seconds()
	r.DiskWriteBytes = after.WriteBytes - atReady.WriteBytes
	if r.Received > 0 {
		r.CPUPer1kEvents = 1000 * r.CPUSeconds / float64(r.Received)
		r.DiskBytesPerEvent = float64(r.DiskWriteBytes) / float64(r.Received)
	}
	b.stopGateway()
	snap := b.rec.snapshot()
	r.Requests, r.Foreign, r.BadRequests, r.Invalid, r.InvalidFirst = snap.Requests, snap.Foreign, snap.Bad, snap.Invalid, snap.Sample
	for _, c := range snap.Counts {
		if c > 1 {
			r.Duplicated += int64(c - 1)
		}
	}
	b.logf("drained %d of %d in %.1fs (%.0f events/s), peak RSS %.1f MB", r.Received, r.Published, r.DrainSec, r.DrainPerSec, r.PeakRSSMB)
	return nil
}

// drainStartup waits until every stored event has arrived or
// --startup-drain has passed since ready, sampling the gateway's memory
// every 100 ms; it returns the peaks.
func (b *bench) drainStartup(ctx context.Context, ready time.Time, peak memStats) (memStats, error) {
	r := &b.res
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(b.o.StartupDrain)
	defer deadline.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			return peak, ctx.Err()
		case <-b.gw.exited:
			return peak, fmt.Errorf("edgegate exited while draining: %v", b.gw.waitErr)
		case <-deadline.C:
			done = true
		case <-tick.C:
		}
		mem, err := readMem(b.gw.pid())
		if err != nil {
			return peak, err
		}
		peak = peak.max(mem)
		if n := int64(b.rec.unique()); n >= b.spec.Startup {
			done = true
		}
	}
	r.Received = int64(b.rec.unique())
	r.DrainSec = time.Since(ready).Seconds()
	r.DrainPerSec = float64(r.Received) / r.DrainSec
	r.EventsPerSec = r.DrainPerSec
	return peak, nil
}

// waitListening dials addr every millisecond until a TCP connection is
// accepted, the process exits or ctx is done.
func (p *gatewayProc) waitListening(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: 100 * time.Millisecond}
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("edgegate exited before listening: %v", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("edgegate not listening on %s: %w", addr, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// waitReadyEvery is waitReady polling every interval.
func (p *gatewayProc) waitReadyEvery(ctx context.Context, admin string, every time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("edgegate exited before ready: %v", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("edgegate not ready: %w", ctx.Err())
		case <-time.After(every):
		}
	}
}

// dirSize is the bytes of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }
