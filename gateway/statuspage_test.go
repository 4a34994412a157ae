package gateway

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgegate/edgegate/internal/browsertest"
	"github.com/edgegate/edgegate/internal/mqtttest"
)

// With admin.tokens, the status page (served without a token: it holds no
// data) asks for a token, says when one is refused, and with the right one
// shows the data and the live tail, both read with the bearer header; the
// token stays in the tab's sessionStorage across a reload, never in a URL,
// until "Forget token".
func TestStatusPageWithTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	browsertest.Find(t)
	cfg := testConfig(t, newReceiver(t).URL())
	cfg.Admin.Tokens = []AdminToken{{Name: "ops", Hash: "$plain$ops-T0ken"}}
	var calls atomic.Int32
	gw := startWith(t, cfg, Options{verifyToken: plainVerifier(&calls)})
	base := "http://" + gw.g.AdminAddr().String()
	dev := mqtttest.Connect(t, gw.mqtt, "door-1")

	b := browsertest.New(t, 60*time.Second, base+"/")
	b.Do(chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.ID("login")))
	if !browsertest.Eval[bool](b, `document.getElementById('main').hidden`) {
		t.Error("data shown before a token was given")
	}
	b.Do(chromedp.SendKeys(chromedp.ID("token"), "wrong-token"), chromedp.Click(chromedp.CSS("#login button")))
	b.Until("the wrong token refused", func() (bool, string) {
		msg := b.Text("#login-error")
		return strings.Contains(msg, "refused") && !browsertest.Eval[bool](b, `document.getElementById('login').hidden`), msg
	})
	b.Do(chromedp.SendKeys(chromedp.ID("token"), "ops-T0ken"), chromedp.Click(chromedp.CSS("#login button")))
	b.Do(chromedp.WaitVisible(chromedp.ID("main")))

	publishSeq(t, dev, "door-1", 0, 3)
	b.Until("the device and its events on the page", func() (bool, string) {
		d, tail := b.Text("#devices"), b.Text("#tail li:not(.skipped)")
		return d == "1" && strings.Contains(tail, "door-1"), "devices " + d + ", tail " + tail
	})
	if got := browsertest.Eval[string](b, `sessionStorage.getItem('edgegate.admin-token')`); got != "ops-T0ken" {
		t.Errorf("sessionStorage holds %q", got)
	}

	// A reload keeps the token of this tab: no login form.
	b.Do(chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("main")))
	publishSeq(t, dev, "door-1", 3, 1)
	b.Until("the tail after a reload", func() (bool, string) {
		tail := b.Text("#tail li:not(.skipped)")
		return strings.Contains(tail, `"seq":3`), tail
	})
	if !browsertest.Eval[bool](b, `document.getElementById('login').hidden`) {
		t.Error("the login form shows after a reload")
	}
	urls := browsertest.Eval[[]string](b, `performance.getEntriesByType('resource').map(e => e.name).concat([location.href])`)
	for _, u := range urls {
		if strings.Contains(u, "T0ken") {
			t.Errorf("the token is in a URL: %s", u)
		}
	}

	b.Do(chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("login")))
	if got := browsertest.Eval[any](b, `sessionStorage.getItem('edgegate.admin-token')`); got != nil {
		t.Errorf("after Forget token, sessionStorage holds %v", got)
	}
}
