package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// serveAdmin serves the admin endpoint on g.adminLn until ctx is done:
//
//	/healthz  200 while the process runs
//	/readyz   200 once MQTT listeners are bound and the buffer is open, 503 otherwise
//	/metrics  Prometheus text format
//	/status   JSON: buffer, uplinks, clients (never secrets)
//	POST /-/reload  reload the configuration file (as SIGHUP does)
//	/v1/buffer/...  the buffer tools (registerBufferRoutes)
func (g *Gateway) serveAdmin(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !g.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		g.metrics.WritePrometheus(w)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(g.status())
	})
	mux.HandleFunc("POST /-/reload", func(w http.ResponseWriter, _ *http.Request) {
		if g.configPath == "" {
			http.Error(w, "reload is not available: the gateway was not started from a file", http.StatusNotFound)
			return
		}
		if err := g.ReloadFile(g.configPath); err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		w.Write([]byte("reloaded\n"))
	})
	g.registerBufferRoutes(mux)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(g.adminLn) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(shutCtx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type uplinkStatus struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Mode string `json:"mode"`
	URL  string `json:"url"` // redacted: no credentials or query values
	Up   bool   `json:"up"`
}

type status struct {
	GatewayID string         `json:"gateway_id"`
	Ready     bool           `json:"ready"`
	Clients   int            `json:"mqtt_clients"`
	Buffer    any            `json:"buffer"`
	Uplinks   []uplinkStatus `json:"uplinks"`
}

func (g *Gateway) status() status {
	st := status{
		GatewayID: g.cfg.GatewayID,
		Ready:     g.ready.Load(),
		Clients:   g.broker.Clients(),
		Buffer:    g.buf.Stats(),
	}
	for _, f := range g.forwarders {
		r := f.cfg.Redacted()
		st.Uplinks = append(st.Uplinks, uplinkStatus{Name: r.Name, Type: r.Type(), Mode: r.Mode(), URL: r.URL(), Up: f.delivery.Up()})
	}
	return st
}
