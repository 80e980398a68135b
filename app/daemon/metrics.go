package daemon

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the daemon's Prometheus metrics, one series per
// application. A nil *Metrics records nothing.
type Metrics struct {
	reg         *prometheus.Registry
	lastAttempt *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	lastOK      *prometheus.GaugeVec
	failures    *prometheus.GaugeVec
	duration    *prometheus.GaugeVec
	bytesRead   *prometheus.GaugeVec
	bytesAdded  *prometheus.GaugeVec
	skew        *prometheus.GaugeVec
	snapTime    *prometheus.GaugeVec
	nextRun     *prometheus.GaugeVec
	runs        *prometheus.CounterVec
	drillTime   *prometheus.GaugeVec
	drillOK     *prometheus.GaugeVec
	drillTTR    *prometheus.GaugeVec
	snapshots   *prometheus.GaugeVec
	replicaLag  *prometheus.GaugeVec
	repoBytes   *prometheus.GaugeVec
}

// NewMetrics registers the metrics in a registry of their own (with the
// Go runtime and process collectors), so nothing global is touched.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gauge := func(name, help string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "cairn", Name: name, Help: help}, []string{"app"})
		reg.MustRegister(g)
		return g
	}
	m := &Metrics{
		reg:         reg,
		lastAttempt: gauge("last_attempt_timestamp_seconds", "When the last run started (Unix time)."),
		lastSuccess: gauge("last_success_timestamp_seconds", "When the last successful run started (Unix time)."),
		lastOK:      gauge("last_run_success", "1 if the last run succeeded, 0 if it failed."),
		failures:    gauge("consecutive_failures", "Failed runs since the last successful one."),
		duration:    gauge("last_run_duration_seconds", "How long the last run took."),
		bytesRead:   gauge("last_backup_read_bytes", "Bytes the last successful backup read from its components."),
		bytesAdded:  gauge("last_backup_added_bytes", "Bytes the last successful backup added to the repository."),
		skew:        gauge("last_backup_skew_seconds", "Time from the first component's start to the last one's end in the last snapshot."),
		snapTime:    gauge("last_snapshot_timestamp_seconds", "Time of the newest snapshot the daemon wrote (Unix time)."),
		nextRun:     gauge("next_run_timestamp_seconds", "When the next run is due (Unix time)."),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "cairn", Name: "runs_total",
			Help: "Runs by result (ok, failed)."}, []string{"app", "result"}),
	}
	reg.MustRegister(m.runs)
	m.drillTime = gauge("last_drill_timestamp_seconds", "When the last restore drill ran (Unix time).")
	m.drillOK = gauge("last_drill_success", "1 if the last restore drill restored, verified and probed everything, else 0.")
	m.drillTTR = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "cairn", Name: "last_drill_restore_seconds",
		Help: "Time-to-restore of each component in the last drill."}, []string{"app", "component"})
	reg.MustRegister(m.drillTTR)
	m.snapshots = gauge("snapshots", "Snapshots of the application in its repository.")
	m.replicaLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "cairn", Name: "replica_lag_seconds",
		Help: "How far each replica's newest snapshot of the application is behind the repository's."}, []string{"app", "target"})
	reg.MustRegister(m.replicaLag)
	m.repoBytes = gauge("repository_bytes", "Bytes of packs in the application's repository (shared with any other application in it), from the store listing after each run.")
	return m
}

// Handler serves /metrics and /healthz (200 "ok" while the daemon runs).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// Restore sets the series from a state file read at start, so a
// restarted daemon reports the last run before its first new one.
func (m *Metrics) Restore(st State) {
	if m == nil || st.LastAttempt.IsZero() {
		return
	}
	m.set(st)
}

// RestoreDrill sets the drill series from a recorded drill.
func (m *Metrics) RestoreDrill(app string, d *Drill) {
	if d != nil {
		m.drilled(app, *d)
	}
}

func (m *Metrics) drilled(app string, d Drill) {
	if m == nil {
		return
	}
	m.drillTime.WithLabelValues(app).Set(unix(d.Time))
	ok := 0.0
	if d.OK {
		ok = 1
	}
	m.drillOK.WithLabelValues(app).Set(ok)
	m.drillTTR.DeletePartialMatch(prometheus.Labels{"app": app})
	for c, s := range d.RestoreSeconds {
		m.drillTTR.WithLabelValues(app, c).Set(s)
	}
}

func (m *Metrics) repositories(app string, o Outcome) {
	if m == nil {
		return
	}
	m.snapshots.WithLabelValues(app).Set(float64(o.Snapshots))
	if o.RepositoryBytes > 0 {
		m.repoBytes.WithLabelValues(app).Set(float64(o.RepositoryBytes))
	}
	m.replicaLag.DeletePartialMatch(prometheus.Labels{"app": app})
	for target, lag := range o.ReplicaLag {
		m.replicaLag.WithLabelValues(app, target).Set(lag.Seconds())
	}
}

func (m *Metrics) planned(st State) {
	if m == nil {
		return
	}
	m.nextRun.WithLabelValues(st.App).Set(unix(st.NextRun))
}

func (m *Metrics) finished(st State) {
	if m == nil {
		return
	}
	m.runs.WithLabelValues(st.App, st.LastResult).Inc()
	m.set(st)
}

func (m *Metrics) set(st State) {
	a := st.App
	m.lastAttempt.WithLabelValues(a).Set(unix(st.LastAttempt))
	m.duration.WithLabelValues(a).Set(st.LastDuration.Seconds())
	m.failures.WithLabelValues(a).Set(float64(st.Failures))
	ok := 0.0
	if st.LastResult == "ok" {
		ok = 1
	}
	m.lastOK.WithLabelValues(a).Set(ok)
	if !st.LastSuccess.IsZero() {
		m.lastSuccess.WithLabelValues(a).Set(unix(st.LastSuccess))
		m.bytesRead.WithLabelValues(a).Set(float64(st.Outcome.BytesRead))
		m.bytesAdded.WithLabelValues(a).Set(float64(st.Outcome.BytesAdded))
		m.skew.WithLabelValues(a).Set(st.Outcome.Skew.Seconds())
		m.snapTime.WithLabelValues(a).Set(unix(st.Outcome.SnapshotTime))
	}
}

func unix(t time.Time) float64 {
	return float64(t.UnixMilli()) / 1000
}
