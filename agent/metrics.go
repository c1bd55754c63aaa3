package agent

import (
	"bytes"
	"fmt"
	"path/filepath"
	"time"

	"github.com/dockward/dockward/agent/managedfile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Metrics counts what the agent did, for node_exporter's textfile collector.
// A nil *Metrics ignores everything.
type Metrics struct {
	// Root is --root: the textfile path is a host path resolved inside it
	// ("" = the live system).
	Root        string
	reg         *prometheus.Registry
	runs        *prometheus.CounterVec
	changes     *prometheus.CounterVec
	failures    *prometheus.CounterVec
	corrections *prometheus.CounterVec
	restarts    *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	duration    prometheus.Gauge

	// Gauges of the agent's state (SetState), for alerts: what `dockward
	// status` shows.
	moduleSuccess *prometheus.GaugeVec
	moduleFailing *prometheus.GaugeVec
	modulePending *prometheus.GaugeVec
	moduleFlap    *prometheus.GaugeVec
	backstop      prometheus.Gauge
	started       prometheus.Gauge
	reloadOK      prometheus.Gauge
}

// NewMetrics makes the agent's metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dockward_runs_total", Help: "Converge runs, by result (ok, changed, failed).",
		}, []string{"result"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dockward_module_changes_total", Help: "Changes applied, by module.",
		}, []string{"module"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dockward_module_failures_total", Help: "Failed or rolled-back module runs, by module.",
		}, []string{"module"}),
		corrections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dockward_drift_corrections_total", Help: "Runs after the first that found and corrected drift, by module.",
		}, []string{"module"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dockward_service_restarts_total", Help: "Restarts and reloads done by service modules, by unit and action.",
		}, []string{"unit", "action"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dockward_last_success_timestamp_seconds", Help: "Start time of the last run that did not fail.",
		}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dockward_last_run_duration_seconds", Help: "Duration of the last run.",
		}),
		moduleSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dockward_module_last_success_timestamp_seconds", Help: "Start time of the last converge in which the module did not fail; 0 if none did.",
		}, []string{"module"}),
		moduleFailing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dockward_module_consecutive_failures", Help: "Converges of the module in a row that failed or were rolled back; 0 when its last one did not fail.",
		}, []string{"module"}),
		moduleFlap: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dockward_module_flapping",
			Help: "1 while something keeps undoing the module's corrections and the agent leaves it alone (its back-off), else 0; the log and dockward status name the targets.",
		}, []string{"module"}),
		modulePending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dockward_module_pending_items", Help: "Items the module found declared but waiting for something outside dockward (a Docker network not created yet).",
		}, []string{"module"}),
		backstop: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dockward_agent_next_backstop_timestamp_seconds", Help: "When the agent's next full converge (the interval's backstop) is due; a time long past means the agent is stuck or gone.",
		}),
		started: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dockward_agent_start_timestamp_seconds", Help: "When the running agent started.",
		}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dockward_config_last_reload_successful", Help: "1 when the last configuration reload was taken (or none was tried), 0 when it was refused and the agent runs an older configuration.",
		}),
	}
	m.reg.MustRegister(m.runs, m.changes, m.failures, m.corrections, m.restarts, m.lastSuccess, m.duration,
		m.moduleSuccess, m.moduleFailing, m.modulePending, m.moduleFlap, m.backstop, m.started, m.reloadOK)
	return m
}

// Observe counts one apply report. drift says the run was not the first
// (its changes correct drift rather than provision).
func (m *Metrics) Observe(rep *Report, drift bool) {
	if m == nil || rep == nil {
		return
	}
	result := "ok"
	switch {
	case rep.Failed():
		result = "failed"
	case rep.Changed():
		result = "changed"
	}
	m.runs.WithLabelValues(result).Inc()
	m.duration.Set(rep.Duration)
	if !rep.Failed() {
		m.lastSuccess.Set(float64(rep.Start.Unix()))
	}
	for _, mr := range rep.Modules {
		switch mr.Status {
		case StatusChanged:
			m.changes.WithLabelValues(mr.ID).Add(float64(len(mr.Changes)))
			if drift {
				m.corrections.WithLabelValues(mr.ID).Inc()
			}
			if mr.unit != "" {
				for _, c := range mr.Changes {
					if a := RestartAction(c); a != "" {
						m.restarts.WithLabelValues(mr.unit, a).Inc()
					}
				}
			}
		case StatusFailed, StatusRolledBack:
			m.failures.WithLabelValues(mr.ID).Inc()
		}
	}
}

// SetState sets the gauges of the agent's state: every module of the
// running configuration, and only those (a module a reload removed goes).
func (m *Metrics) SetState(st *AgentState) {
	if m == nil || st == nil {
		return
	}
	m.moduleSuccess.Reset()
	m.moduleFailing.Reset()
	m.modulePending.Reset()
	m.moduleFlap.Reset()
	for _, ms := range st.Modules {
		flapping := 0.0
		if ms.Flapping != nil && st.Updated.Before(ms.Flapping.Until) {
			flapping = 1
		}
		m.moduleFlap.WithLabelValues(ms.ID).Set(flapping)
		m.moduleSuccess.WithLabelValues(ms.ID).Set(unixSeconds(ms.LastSuccess))
		m.moduleFailing.WithLabelValues(ms.ID).Set(float64(ms.ConsecutiveFailures))
		m.modulePending.WithLabelValues(ms.ID).Set(float64(len(ms.Pending)))
	}
	m.backstop.Set(unixSeconds(st.NextBackstop))
	m.started.Set(unixSeconds(st.Started))
	ok := 1.0
	if st.Config.ReloadError != "" {
		ok = 0
	}
	m.reloadOK.Set(ok)
}

// unixSeconds is t as a Prometheus timestamp, 0 for the zero time.
func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// RestartAction tells whether a Restarter's change is a restart or reload:
// restarters mark those changes with New "restarted" or "reloaded".
func RestartAction(c Change) string {
	switch c.New {
	case "restarted":
		return "restart"
	case "reloaded":
		return "reload"
	}
	return ""
}

// WriteTextfile writes the metrics atomically in the Prometheus text
// format to path, a host path (under --root: inside Root).
func (m *Metrics) WriteTextfile(path string) error {
	if m == nil {
		return nil
	}
	mfs, err := m.reg.Gather()
	if err != nil {
		return fmt.Errorf("metrics textfile: %w", err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			return fmt.Errorf("metrics textfile: %w", err)
		}
	}
	root, err := managedfile.Open(m.Root)
	if err != nil {
		return fmt.Errorf("metrics textfile: %w", err)
	}
	defer root.Close()
	// node_exporter reads it, as another user.
	if err := root.MkdirAll(filepath.Dir(filepath.Clean("/"+path)), 0o755); err != nil {
		return fmt.Errorf("metrics textfile: %w", err)
	}
	if err := root.WriteAtomic(path, buf.Bytes(), managedfile.RootOwned(0o644)); err != nil {
		return fmt.Errorf("metrics textfile: %w", err)
	}
	return nil
}
