package metrics

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mqsc"
	"github.com/qmgr/qmgr/qm"
)

// Source is what the collector reads: a running member (*qm.Member
// satisfies it).
type Source interface {
	// Name is the member's name.
	Name() string
	// Group is the member's attached group (structures, peer table,
	// channel status table).
	Group() *group.Group
	// Repo is the group's definitions (structures, backups).
	Repo() *defs.Repo
	// Stats is what the member itself counted (qm.Member.Stats).
	Stats() qm.Stats
	// Children is the state of the member's child processes.
	Children() mqsc.Children
	// Connections counts the connections registered under the member.
	Connections() qm.ConnCounts
	// Observe runs f while the member holds its group and definitions,
	// and refuses once it has released them (qm.Member.Observe): a scrape
	// never reads a structure a stop has unmapped.
	Observe(f func(*group.Group, *defs.Repo) error) error
}

var _ Source = (*qm.Member)(nil)

// NewRegistry returns a registry holding the member's collector (every
// qmgr_ metric, each labelled with the group and the member) and the Go
// runtime's and the process's standard collectors.
func NewRegistry(src Source) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	Register(reg, src)
	return reg
}

// Register registers the member's collector with reg: every qmgr_ metric,
// labelled group and member. It panics if reg already has them (a
// programmer's bug, as prometheus.MustRegister).
func Register(reg prometheus.Registerer, src Source) {
	labels := prometheus.Labels{"group": src.Group().Config().Name, "member": src.Name()}
	prometheus.WrapRegistererWith(labels, reg).MustRegister(newCollector(src))
}

// scrapeTimeout bounds a scrape (the collector itself reads memory and the
// repository; a slow client is the HTTP server's to cut off).
const scrapeTimeout = 10 * time.Second

// Handler serves reg's metrics in the Prometheus exposition formats
// (promhttp), at most 4 scrapes at a time; a metric that fails to collect
// is left out (logged to log at Warn when log is not nil, and counted in
// promhttp_metric_handler_errors_total), not a failed scrape.
func Handler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	opts := promhttp.HandlerOpts{
		Registry:            reg,
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             scrapeTimeout,
	}
	if log != nil {
		opts.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	}
	return promhttp.HandlerFor(reg, opts)
}
