package cetest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/cloudevents+json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func structured(id string) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"s","type":"t","data":{"n":1}}`, id)
}

func TestServerAnswers(t *testing.T) {
	s := NewServer(t)
	if code, _ := post(t, s.URL(), structured("1")); code != 200 {
		t.Fatalf("valid: %d", code)
	}
	s.Refuse(http.StatusServiceUnavailable)
	if code, _ := post(t, s.URL(), structured("2")); code != 503 {
		t.Errorf("refused: %d", code)
	}
	s.Refuse(0)
	s.RejectIf(func(e event.Event) bool { return e.ID() == "3" })
	if code, body := post(t, s.URL(), structured("3")); code != 400 || !strings.Contains(body, "event 3 refused") {
		t.Errorf("rejected: %d %q", code, body)
	}
	s.Respond(func(w http.ResponseWriter, r *Request) int {
		w.Header().Set("Retry-After", "1")
		return http.StatusTooManyRequests
	})
	if code, body := post(t, s.URL(), structured("4")); code != 429 || !strings.HasPrefix(body, "rejected by test\nline two zzz") {
		t.Errorf("respond: %d %q", code, body)
	}
	s.Respond(nil)
	post(t, s.URL(), structured("1"))
	if got := s.WaitFor(1, time.Second); len(got) != 1 || got[0].ID() != "1" {
		t.Errorf("WaitFor: %v", got)
	}
	if d, total := s.Counts(); d != 1 || total != 2 || s.Duplicates() != 1 || len(s.Views()) != 2 || s.Views()[1].Attrs["id"] != "1" {
		t.Errorf("counts %d %d, duplicates %d, views %v", d, total, s.Duplicates(), s.Views())
	}
	if st := s.Stats(); st.Requests != 5 || st.Gzipped != 0 || st.MaxInflight != 1 {
		t.Errorf("stats %+v", st)
	}
}

// recordingTB catches what a Server reports.
type recordingTB struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestServerReportsViolations(t *testing.T) {
	tb := &recordingTB{TB: t}
	s := NewServer(tb)
	warn := `{"specversion":"1.0","id":"1","source":"s","type":"t","abcdefghijklmnopqrstuvwxyz":"x"}`
	if code, _ := post(t, s.URL(), warn); code != 400 {
		t.Errorf("SHOULD violation answered %d", code)
	}
	if bad := s.Violations(); len(bad) != 1 || !strings.Contains(bad[0], "(SHOULD)") ||
		len(tb.errors) != 1 || !strings.Contains(tb.errors[0], "invalid CloudEvents request") {
		t.Errorf("violations %q, reported %q", bad, tb.errors)
	}
	if d, _ := s.Counts(); d != 0 {
		t.Errorf("recorded an invalid event")
	}
}
