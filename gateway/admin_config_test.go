package gateway

import (
	"net/http/httptest"
	"testing"
)

// ?force=true is honoured from the gateway's own host only.
func TestFromLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:5000": true, "[::1]:5000": true, "[::ffff:127.0.0.1]:1": true,
		"10.0.0.7:5000": false, "[2001:db8::1]:443": false, "garbage": false,
	} {
		r := httptest.NewRequest("PUT", "/v1/config?force=true", nil)
		r.RemoteAddr = addr
		if got := fromLoopback(r); got != want {
			t.Errorf("fromLoopback(%s) = %v, want %v", addr, got, want)
		}
	}
}
