package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Find returns the path of the browser: $EDGEGATE_CHROMIUM, or chromium,
// chromium-browser or google-chrome on PATH. Without one it skips tb, or
// fails it when EDGEGATE_REQUIRE_BROWSER=1.
func Find(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("EDGEGATE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const why = "no chromium on PATH (scripts/ensure-chromium.sh installs it)"
	if os.Getenv("EDGEGATE_REQUIRE_BROWSER") == "1" {
		tb.Fatal(why + ", and EDGEGATE_REQUIRE_BROWSER=1")
	}
	tb.Skip(why)
	return ""
}

// Browser is one headless Chromium tab for one test.
type Browser struct {
	Ctx context.Context // run chromedp actions with it

	tb      testing.TB
	allowed []string

	mu       sync.Mutex
	problems []string
}

// New starts a browser that may load only URLs under the allowed
// prefixes (the gateway's admin origin), with every action bounded by
// timeout. It is closed when the test ends.
func New(tb testing.TB, timeout time.Duration, allowed ...string) *Browser {
	tb.Helper()
	path := Find(tb)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.NoSandbox, // tests may run as root, where Chromium's sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.WindowSize(412, 915), // a phone
		chromedp.Flag("no-proxy-server", true),
	)
	b := &Browser{tb: tb, allowed: allowed}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// The listener sees every event of the tab from its start (it runs
	// in the tab's read loop: it only records).
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithListener(func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg = d.Exception.Description
			}
			b.problem("uncaught JavaScript exception at %s:%d: %s", d.URL, d.LineNumber+1, msg)
		case *network.EventRequestWillBeSent:
			if u := ev.Request.URL; !b.allowedURL(u) {
				b.problem("the page requested %s, outside %v", u, b.allowed)
			}
		}
	}))
	tb.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, p := range b.problems {
			tb.Error(p)
		}
	})
	// Start the browser without a deadline (it would stop the browser),
	// then bound every later action.
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("start %s: %v", path, err)
	}
	var cancelTimeout context.CancelFunc
	b.Ctx, cancelTimeout = context.WithTimeout(ctx, timeout)
	tb.Cleanup(cancelTimeout)
	return b
}

func (b *Browser) allowedURL(u string) bool {
	if strings.HasPrefix(u, "data:") {
		return true
	}
	for _, a := range b.allowed {
		if strings.HasPrefix(u, a) {
			return true
		}
	}
	return false
}

func (b *Browser) problem(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

// Do runs actions, failing the test on an error.
func (b *Browser) Do(actions ...chromedp.Action[chromedp.Void]) {
	b.tb.Helper()
	if err := chromedp.Do(b.Ctx, actions...); err != nil {
		b.tb.Fatalf("browser: %v", err)
	}
}

// Eval evaluates a JavaScript expression, failing the test on an error.
func Eval[T any](b *Browser, expr string) T {
	b.tb.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.tb.Fatalf("browser: evaluate %s: %v", expr, err)
	}
	return v
}

// Text returns the text content of the first element matching the CSS
// selector, "" when there is none.
func (b *Browser) Text(selector string) string {
	b.tb.Helper()
	return Eval[string](b, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, selector))
}

// Until polls cond every 100 ms until it holds, failing the test with
// what (and cond's last note) when the browser's timeout ends first.
func (b *Browser) Until(what string, cond func() (ok bool, note string)) {
	b.tb.Helper()
	for {
		ok, note := cond()
		if ok {
			return
		}
		select {
		case <-b.Ctx.Done():
			b.tb.Fatalf("timed out waiting for %s (last: %s)", what, note)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Screenshot saves a PNG of the whole page as name in dir and returns its
// path.
func (b *Browser) Screenshot(dir, name string) string {
	b.tb.Helper()
	png, err := chromedp.Run(b.Ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.tb.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.tb.Fatal(err)
	}
	return path
}
