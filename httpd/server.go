package httpd

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/metrics"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/status"
)

// Source is what the server shows: the member whose process it runs in
// (MemberSource), or a test's fake.
type Source interface {
	// Name is the member's name.
	Name() string
	// Ready is nil when the member is active and its structures attached.
	Ready() error
	// Status is the group's status (package status).
	Status() (status.Report, error)
	// Exec runs MQSC commands on the member.
	Exec(mqsc string) qm.Response
	// PeerRecoveries are the recoveries of dead members the member
	// performed.
	PeerRecoveries() []qm.PeerRecovery
}

// MemberSource is member m as a Source.
func MemberSource(m *qm.Member) Source { return memberSource{m} }

type memberSource struct{ *qm.Member }

// Status collects the report while the member holds its group
// (qm.Member.Observe: never after the stop unmapped it).
func (m memberSource) Status() (rep status.Report, err error) {
	err = m.Observe(func(g *group.Group, _ *defs.Repo) error {
		rep, err = status.Collect(g)
		return err
	})
	return rep, err
}

//go:embed static
var staticFiles embed.FS

// Server is a member's HTTP server.
type Server struct {
	cfg Config
	log *slog.Logger
	l   net.Listener
	srv *http.Server
	// src is the member once it is active (SetSource); nil before: the
	// API answers 503 and /readyz says the member is starting. Written
	// by SetSource, read by every request.
	src atomic.Pointer[Source]
	// cmd holds a token while a request runs an MQSC command on the
	// member (Config.CommandWait).
	cmd chan struct{}
}

// Listen validates cfg and listens on its address; Serve then serves.
func Listen(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if !cfg.Enabled() {
		return nil, fmt.Errorf("%w: no address", ErrConfig)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("httpd: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, l: l, cmd: make(chan struct{}, 1)}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.l.Addr() }

// Serve serves until Close.
func (s *Server) Serve() error {
	err := s.srv.Serve(s.l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// SetSource makes src (the member, once active) what the server shows.
func (s *Server) SetSource(src Source) { s.src.Store(&src) }

// source is the member, or nil before SetSource.
func (s *Server) source() Source {
	if p := s.src.Load(); p != nil {
		return *p
	}
	return nil
}

// Close stops the server: the listener at once, requests in flight given
// until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	return err
}

// Handler is the server's routes, each response with the security
// headers (headers).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", metrics.Handler(s.cfg.Registry, s.log))
	mux.HandleFunc("GET /api/member", s.apiMember)
	mux.HandleFunc("GET /api/status", s.apiStatus)
	mux.HandleFunc("GET /api/display/{object}", s.apiDisplay)
	mux.HandleFunc("GET /api/recoveries", s.apiRecoveries)
	mux.HandleFunc("POST /api/channels/{name}/{verb}", s.authorized(s.apiChannelAction))
	static, _ := fs.Sub(staticFiles, "static")
	files := http.FileServerFS(static)
	mux.Handle("GET /{$}", files)
	mux.Handle("GET /static/", http.StripPrefix("/static/", files))
	return headers(mux)
}

// contentSecurityPolicy lets the console load its own scripts, styles
// and API and nothing else: no inline script, no other origin, no frames.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// headers adds the security headers to every response.
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	src := s.source()
	if src == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready: the member is starting")
		return
	}
	if err := src.Ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	fmt.Fprintln(w, "ready")
}
