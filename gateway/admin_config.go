package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/edgegate/edgegate/configsign"
	"github.com/edgegate/edgegate/internal/configstore"
)

// maxConfigBytes bounds a pushed configuration document.
const maxConfigBytes = 4 << 20

// SignatureHeader carries a detached signature of a pushed document.
const SignatureHeader = configsign.Header

// ConfigErrorBody answers a refused PUT /v1/config or rollback: why (an
// ApplyError reason) and every problem, one per line, as
// origin:line:col: path: message.
type ConfigErrorBody struct {
	Error  string       `json:"error"`
	Reason string       `json:"reason,omitempty"`
	Errors []string     `json:"errors,omitempty"`
	Result *ApplyResult `json:"result,omitempty"`
}

// ConfigHistory is GET /v1/config/history.
type ConfigHistory struct {
	// Active is the version in effect.
	Active  int64               `json:"active"`
	Entries []configstore.Entry `json:"entries"`
}

// RollbackRequest is the body of POST /v1/config/rollback; Version 0 (or
// no body) goes back to the configuration before the running one.
type RollbackRequest struct {
	Version int64 `json:"version"`
}

// registerConfigRoutes adds the remote configuration routes:
//
//	GET  /v1/config           the running document, secrets <redacted>;
//	                          Edgegate-Config-Version, Edgegate-Config-Hash, ETag
//	PUT  /v1/config           apply a document (Apply, Source "admin");
//	                          ?dry_run=true validates and diffs only;
//	                          ?removed_backlog=drop drops removed uplinks' queues;
//	                          a detached signature in Edgegate-Signature;
//	                          ?force=true (from loopback only) accepts an
//	                          older signed version
//	GET  /v1/config/history   the kept configurations, newest first
//	POST /v1/config/rollback  {"version": N} or the previous one
//
// Refusals: 422 invalid (every problem listed), 403 bad signature, 409 an
// older signed version or one rolled back, 404 a version not kept.
func (g *Gateway) registerConfigRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/config", func(w http.ResponseWriter, _ *http.Request) {
		a := g.running.Load()
		if len(a.data) == 0 {
			writeConfigError(w, http.StatusNotFound, errors.New("the running configuration was not loaded from a document"), nil)
			return
		}
		doc, err := redactDocument(a.data)
		if err != nil {
			writeJSON(w, nil, fmt.Errorf("redact the running config: %w", err))
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Edgegate-Config-Version", strconv.FormatInt(a.entry.Version, 10))
		w.Header().Set("Edgegate-Config-Hash", a.entry.Hash)
		w.Header().Set("ETag", strconv.Quote(a.entry.Hash))
		w.Write(doc)
	})
	mux.HandleFunc("PUT /v1/config", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		dry, err := boolParam(q.Get("dry_run"))
		if err != nil {
			writeConfigError(w, http.StatusBadRequest, fmt.Errorf("dry_run: %w", err), nil)
			return
		}
		force, err := boolParam(q.Get("force"))
		if err != nil {
			writeConfigError(w, http.StatusBadRequest, fmt.Errorf("force: %w", err), nil)
			return
		}
		if force && !fromLoopback(r) {
			// Going back to an older signed version is for an operator
			// on the box, never for a stolen token from afar.
			writeConfigError(w, http.StatusForbidden, errors.New("force: only from the gateway itself (a loopback address)"), nil)
			return
		}
		drop := false
		switch v := q.Get("removed_backlog"); v {
		case "", "keep":
		case "drop":
			drop = true
		default:
			writeConfigError(w, http.StatusBadRequest, fmt.Errorf("removed_backlog: want keep or drop, not %q", v), nil)
			return
		}
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxConfigBytes))
		if err != nil {
			writeConfigError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("config body: %w (at most %d bytes)", err, maxConfigBytes), nil)
			return
		}
		res, err := g.Apply(context.WithoutCancel(r.Context()), ConfigUpdate{ // a client that hangs up does not cut the uplinks' handoff short
			Source: SourceAdmin, Origin: "push", Data: data, Signature: []byte(r.Header.Get(SignatureHeader)),
			DryRun: dry, Force: force, DropRemovedBacklog: drop,
		})
		g.answerApply(w, res, err)
	})
	mux.HandleFunc("GET /v1/config/history", func(w http.ResponseWriter, _ *http.Request) {
		h, err := g.configs.History()
		if h == nil {
			h = []configstore.Entry{}
		}
		writeJSON(w, ConfigHistory{Active: g.running.Load().entry.Version, Entries: h}, err)
	})
	mux.HandleFunc("POST /v1/config/rollback", func(w http.ResponseWriter, r *http.Request) {
		var req RollbackRequest
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4096))
		if err == nil && len(strings.TrimSpace(string(body))) > 0 {
			err = json.Unmarshal(body, &req)
		}
		if err != nil {
			writeConfigError(w, http.StatusBadRequest, fmt.Errorf("rollback body: want {\"version\": N}: %w", err), nil)
			return
		}
		res, err := g.Rollback(context.WithoutCancel(r.Context()), req.Version, "requested through the admin API")
		g.answerApply(w, res, err)
	})
}

// answerApply writes Apply's result, or its refusal with the status of
// its reason.
func (g *Gateway) answerApply(w http.ResponseWriter, res ApplyResult, err error) {
	if err == nil {
		writeJSON(w, res, nil)
		return
	}
	status := http.StatusInternalServerError
	var ae *ApplyError
	if errors.As(err, &ae) {
		switch ae.Reason {
		case RefusedInvalid:
			status = http.StatusUnprocessableEntity
		case RefusedSignature:
			status = http.StatusForbidden
		case RefusedStale, RefusedRolledBack:
			status = http.StatusConflict
		case RefusedNoHistory:
			status = http.StatusNotFound
		}
	}
	writeConfigError(w, status, err, &res)
}

func writeConfigError(w http.ResponseWriter, status int, err error, res *ApplyResult) {
	body := ConfigErrorBody{Error: err.Error(), Errors: problemLines(err), Result: res}
	var ae *ApplyError
	if errors.As(err, &ae) {
		body.Reason = ae.Reason
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(body)
}

// boolParam parses a query flag: "" is false.
func boolParam(s string) (bool, error) {
	if s == "" {
		return false, nil
	}
	return strconv.ParseBool(s)
}

// fromLoopback reports whether a request comes from this host.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
