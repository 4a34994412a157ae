package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it is 100 on
// every Linux architecture we run on.
const clockTicks = 100

// gatewayProc is a running edgegate subprocess.
type gatewayProc struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when the process has exited
	waitErr error         // valid after exited is closed
}

// startGateway starts `BIN run --config CONFIG` with its output in logPath.
func startGateway(bin, config, logPath string, env []string) (*gatewayProc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create gateway log: %w", err)
	}
	cmd := exec.Command(bin, "run", "--config", config)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &gatewayProc{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// pid returns the process id.
func (p *gatewayProc) pid() int { return p.cmd.Process.Pid }

// waitReady polls GET http://admin/readyz until it answers 200, the process exits or
// ctx is done.
func (p *gatewayProc) waitReady(ctx context.Context, admin string) error {
	client := &http.Client{Timeout: time.Second}
	url := "http://" + admin + "/readyz"
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := "no answer"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("readyz request: %w", err)
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-p.exited:
			return fmt.Errorf("edgegate exited before ready: %v", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("edgegate not ready at %s (%s): %w", url, last, ctx.Err())
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM and waits up to grace for the process to exit, then kills it. It
// returns how long the shutdown took and the exit error, if any.
func (p *gatewayProc) stop(grace time.Duration) (time.Duration, error) {
	start := time.Now()
	select {
	case <-p.exited:
		return 0, fmt.Errorf("edgegate had already exited: %v", p.waitErr)
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("signal edgegate: %w", err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
		if p.waitErr != nil {
			return time.Since(start), fmt.Errorf("edgegate exit: %w", p.waitErr)
		}
		return time.Since(start), nil
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		return time.Since(start), fmt.Errorf("edgegate did not exit within %s of SIGTERM; killed", grace)
	}
}

// logTail returns the last n lines of the gateway's log.
func (p *gatewayProc) logTail(n int) string {
	return tailFile(p.logPath, n)
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// procStats is what /proc says about a process.
type procStats struct {
	PeakRSS    int64         // VmHWM, bytes
	CPU        time.Duration // utime + stime
	WriteBytes int64         // write_bytes of /proc/PID/io: caused to be written to storage
}

// readProcStats reads /proc/PID/status and /proc/PID/stat.
func readProcStats(pid int) (procStats, error) {
	var ps procStats
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return ps, fmt.Errorf("read process status: %w", err)
	}
	if ps.PeakRSS, err = parseVmHWM(string(status)); err != nil {
		return ps, err
	}
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return ps, fmt.Errorf("read process stat: %w", err)
	}
	if ps.CPU, err = parseCPUTime(string(stat)); err != nil {
		return ps, err
	}
	pio, err := os.ReadFile(filepath.Join(dir, "io"))
	if err != nil {
		return ps, fmt.Errorf("read process io: %w", err)
	}
	ps.WriteBytes, err = parseWriteBytes(string(pio))
	return ps, err
}

// parseWriteBytes returns the write_bytes line of /proc/PID/io.
func parseWriteBytes(pio string) (int64, error) {
	for line := range strings.Lines(pio) {
		rest, ok := strings.CutPrefix(line, "write_bytes:")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse write_bytes: %w", err)
		}
		return n, nil
	}
	return 0, errors.New("no write_bytes in process io")
}

// parseVmHWM returns the VmHWM line of /proc/PID/status in bytes.
func parseVmHWM(status string) (int64, error) { return parseStatusKB(status, "VmHWM") }

// parseStatusKB returns the line "field: N kB" of /proc/PID/status in bytes.
func parseStatusKB(status, field string) (int64, error) {
	for line := range strings.Lines(status) {
		rest, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("parse %s %q: want \"N kB\"", field, strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s: %w", field, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no %s in process status", field)
}

// memStats is a process's resident memory now (/proc/PID/status): all of
// it, its anonymous part (heap, stacks) and its file-backed part (mapped
// files: Badger's tables and logs).
type memStats struct{ RSS, Anon, File int64 }

func readMem(pid int) (memStats, error) {
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return memStats{}, fmt.Errorf("read process status: %w", err)
	}
	var m memStats
	var errs [3]error
	m.RSS, errs[0] = parseStatusKB(string(status), "VmRSS")
	m.Anon, errs[1] = parseStatusKB(string(status), "RssAnon")
	m.File, errs[2] = parseStatusKB(string(status), "RssFile")
	return m, errors.Join(errs[:]...)
}

// max keeps the larger of each figure.
func (m memStats) max(o memStats) memStats {
	return memStats{RSS: max(m.RSS, o.RSS), Anon: max(m.Anon, o.Anon), File: max(m.File, o.File)}
}

// parseCPUTime returns utime+stime from /proc/PID/stat. The command name (field 2) is in
// parentheses and may hold spaces and parentheses, so fields are counted from the last ')'.
func parseCPUTime(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("parse process stat: no ')'")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("parse process stat: %d fields after the command name", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse process stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// droppedMetrics are the counters of messages the gateway dropped by its
// declared policy, refusedMetrics of those it refused (not acknowledged:
// the device keeps them), slowedMetrics of publishes it held back to the
// publisher's fair share.
var (
	droppedMetrics = []string{"edgegate_mqtt_messages_dropped_total", "edgegate_buffer_dropped_total"}
	refusedMetrics = []string{"edgegate_events_refused_total"}
	slowedMetrics  = []string{"edgegate_mqtt_fair_share_delayed_total"}
)

// overloadCounts are an overload run's counters at its end.
type overloadCounts struct{ dropped, refused, slowed int64 }

// scrapeOverload sums droppedMetrics, refusedMetrics and slowedMetrics
// (every label set) from the gateway's admin /metrics.
func scrapeOverload(ctx context.Context, admin string) (overloadCounts, error) {
	var c overloadCounts
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return c, fmt.Errorf("metrics request: %w", err)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return c, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return c, fmt.Errorf("scrape metrics: %s %v", resp.Status, err)
	}
	text := string(body)
	c.dropped, c.refused, c.slowed = sumCounters(text, droppedMetrics), sumCounters(text, refusedMetrics), sumCounters(text, slowedMetrics)
	return c, nil
}

// sumCounters adds up the samples of the named metrics in Prometheus text.
func sumCounters(text string, names []string) int64 {
	var n float64
	for line := range strings.Lines(text) {
		for _, name := range names {
			rest, ok := strings.CutPrefix(line, name)
			if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
				continue
			}
			f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
			if len(f) > 0 {
				v, _ := strconv.ParseFloat(f[0], 64)
				n += v
			}
		}
	}
	return int64(n)
}
