package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/VictoriaMetrics/metricsql"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// The textfile counts runs, changes, drift corrections and restarts by the
// restarter's unit, from the engine's reports.
func TestMetricsTextfile(t *testing.T) {
	a := &fakeModule{id: "a", have: str("1"), want: "2"}
	u := &fakeUnit{deps: []string{"a"}}
	bad := &fakeModule{id: "bad", have: str("1"), want: "1"}
	e := newEngine(t, a, u, bad)
	m := NewMetrics()
	ctx := context.Background()

	rep, err := e.Apply(ctx, nil) // provisions: a changes, the unit restarts
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(rep, false)
	*a.have = "drifted" // someone edits a; the next run corrects it
	bad.planErr = os.ErrPermission
	rep, err = e.Apply(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(rep, true)

	path := filepath.Join(t.TempDir(), "textfile", "dockward.prom")
	if err := m.WriteTextfile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`dockward_runs_total{result="changed"} 1`,
		`dockward_runs_total{result="failed"} 1`,
		`dockward_module_changes_total{module="a"} 2`,
		`dockward_drift_corrections_total{module="a"} 1`,
		`dockward_module_failures_total{module="bad"} 1`,
		`dockward_service_restarts_total{action="restart",unit="unit"} 2`,
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("textfile lacks %q:\n%s", want, b)
		}
	}
}

// The gauges an alert uses follow the agent's state: per module its last
// success, failures in a row and pending items (only the running
// configuration's modules), the next backstop, the start, and whether the
// last reload was taken.
func TestMetricsStateGauges(t *testing.T) {
	m := NewMetrics()
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	st := &AgentState{Started: t0, NextBackstop: t0.Add(5 * time.Minute), Modules: []ModuleState{
		{ID: "gone", ConsecutiveFailures: 7},
	}}
	m.SetState(st)
	st.Config.ReloadError = "bad"
	st.Modules = []ModuleState{
		{ID: "docker_daemon", LastSuccess: t0.Add(time.Minute)},
		{ID: "firewall", ConsecutiveFailures: 3, Pending: []Pending{{Target: "docker network app"}}},
		{ID: "service.docker.service", Flapping: &Flapping{Module: "service.docker.service", Until: t0.Add(time.Hour)}},
		{ID: "subordinate_ids.dockremap", Flapping: &Flapping{Module: "subordinate_ids.dockremap", Until: t0.Add(-time.Minute)}},
	}
	st.Updated = t0
	m.SetState(st)
	got := textfile(t, m)
	for _, want := range []string{
		`dockward_module_last_success_timestamp_seconds{module="docker_daemon"} 1.77763686e+09`,
		`dockward_module_last_success_timestamp_seconds{module="firewall"} 0`,
		`dockward_module_consecutive_failures{module="docker_daemon"} 0`,
		`dockward_module_consecutive_failures{module="firewall"} 3`,
		`dockward_module_pending_items{module="firewall"} 1`,
		`dockward_agent_next_backstop_timestamp_seconds 1.7776371e+09`,
		`dockward_agent_start_timestamp_seconds 1.7776368e+09`,
		`dockward_config_last_reload_successful 0`,
		`dockward_module_flapping{module="service.docker.service"} 1`,
		`dockward_module_flapping{module="subordinate_ids.dockremap"} 0`,
		`dockward_module_flapping{module="docker_daemon"} 0`,
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("textfile lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, `module="gone"`) {
		t.Errorf("a module no longer configured is still exported:\n%s", got)
	}
}

func textfile(t *testing.T, m *Metrics) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dockward.prom")
	if err := m.WriteTextfile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// exportedMetrics are the names of every metric family the agent writes,
// from a textfile in which each has a series: a provisioning run, a drift
// correction with a restart, a failure, and the agent's state.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	a := &fakeModule{id: "a", have: str("1"), want: "2"}
	u := &fakeUnit{deps: []string{"a"}}
	bad := &fakeModule{id: "bad", have: str("1"), want: "1", planErr: os.ErrPermission}
	e := newEngine(t, a, u, bad)
	m := NewMetrics()
	for i := range 2 {
		rep, err := e.Apply(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		m.Observe(rep, i > 0)
		*a.have = "drifted"
	}
	m.SetState(&AgentState{Started: time.Now(), NextBackstop: time.Now(), Modules: []ModuleState{{ID: "a"}}})
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(textfile(t, m)))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for name := range fams {
		names[name] = true
	}
	return names
}

// README.md's Metrics paragraph names every metric the agent exports.
func TestReadmeNamesEveryMetric(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range exportedMetrics(t) {
		if !strings.Contains(string(b), "`"+name) {
			t.Errorf("README.md does not name %s", name)
		}
	}
}

// rulesFile is the example alerting rules, in Prometheus' rule file format
// (the fields rulefmt reads; unknown ones are refused as rulefmt does).
type rulesFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Alert         string            `yaml:"alert"`
			Record        string            `yaml:"record"`
			Expr          string            `yaml:"expr"`
			For           string            `yaml:"for"`
			KeepFiringFor string            `yaml:"keep_firing_for"`
			Labels        map[string]string `yaml:"labels"`
			Annotations   map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// promqlFunctions are PromQL's functions and aggregations: the parser below
// reads MetricsQL, a superset of PromQL, so a rule using one of its
// extensions would parse here and fail in Prometheus.
var promqlFunctions = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`abs absent absent_over_time ceil changes clamp clamp_max clamp_min
		day_of_month day_of_week day_of_year days_in_month delta deriv exp floor histogram_quantile
		holt_winters hour idelta increase irate label_join label_replace ln log2 log10 minute month
		predict_linear rate resets round scalar sgn sort sort_desc sqrt time timestamp vector year
		avg_over_time min_over_time max_over_time sum_over_time count_over_time quantile_over_time
		stddev_over_time stdvar_over_time last_over_time present_over_time
		sum min max avg group stddev stdvar count count_values bottomk topk quantile`) {
		promqlFunctions[f] = true
	}
}

// dist/dockward.rules.yml is a valid rule file whose expressions parse and
// name only metrics the agent exports. Prometheus' own parser
// (github.com/prometheus/prometheus/model/rulefmt) is not used: requiring
// that module raises the versions of eight of dockward's own dependencies
// (OpenTelemetry, golang.org/x/net, ...) and the go directive; the YAML is
// decoded strictly into rulefmt's fields, expressions are parsed with
// MetricsQL's parser (a PromQL superset) limited to PromQL's functions,
// and annotations with text/template as Prometheus expands them.
func TestAlertRulesNameExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	b, err := os.ReadFile("../dist/dockward.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var rf rulesFile
	if err := dec.Decode(&rf); err != nil {
		t.Fatal(err)
	}
	alertName := regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	// Prometheus' template functions the annotations may use.
	funcs := template.FuncMap{}
	for _, f := range []string{"humanize", "humanize1024", "humanizeDuration", "humanizePercentage", "humanizeTimestamp", "query", "first", "label", "value", "printf", "title", "toUpper", "toLower", "reReplaceAll", "match", "safeHtml", "args", "tableLink", "graphLink", "strvalue", "stripPort", "externalURL", "pathPrefix"} {
		funcs[f] = func(...any) string { return "" }
	}
	used := map[string]bool{}
	groups := map[string]bool{}
	n := 0
	for _, g := range rf.Groups {
		if g.Name == "" || groups[g.Name] {
			t.Errorf("group name %q empty or repeated", g.Name)
		}
		groups[g.Name] = true
		for _, r := range g.Rules {
			n++
			if !alertName.MatchString(r.Alert) || r.Record != "" {
				t.Errorf("rule %q: not an alert with a valid name", r.Alert)
			}
			for _, d := range []string{r.For, r.KeepFiringFor} {
				if _, err := model.ParseDuration(d); d != "" && err != nil {
					t.Errorf("%s: %v", r.Alert, err)
				}
			}
			expr, err := metricsql.Parse(r.Expr)
			if err != nil {
				t.Errorf("%s: expr %q: %v", r.Alert, r.Expr, err)
				continue
			}
			metricsql.VisitAll(expr, func(e metricsql.Expr) {
				switch e := e.(type) {
				case *metricsql.MetricExpr:
					for _, lfs := range e.LabelFilterss {
						for _, lf := range lfs {
							if lf.Label == "__name__" {
								used[lf.Value] = true
								if !exported[lf.Value] {
									t.Errorf("%s: %s is not a metric the agent exports", r.Alert, lf.Value)
								}
							}
						}
					}
				case *metricsql.FuncExpr:
					if !promqlFunctions[e.Name] {
						t.Errorf("%s: %s is not a PromQL function", r.Alert, e.Name)
					}
				case *metricsql.AggrFuncExpr:
					if !promqlFunctions[e.Name] {
						t.Errorf("%s: %s is not a PromQL aggregation", r.Alert, e.Name)
					}
				}
			})
			for k, v := range r.Annotations {
				const prefix = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
				if _, err := template.New(k).Funcs(funcs).Parse(prefix + v); err != nil {
					t.Errorf("%s: annotation %s: %v", r.Alert, k, err)
				}
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: no severity label or summary annotation", r.Alert)
			}
		}
	}
	if n == 0 {
		t.Fatal("no rules")
	}
	// README.md's excerpt is the file's: each alert it shows has the
	// file's expression.
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, _ := strings.Cut(string(readme), "\n### Alerts\n")
	_, block, _ := strings.Cut(sec, "```yaml\n")
	block, _, _ = strings.Cut(block, "```\n")
	var shown rulesFile
	if err := yaml.Unmarshal([]byte(block), &shown); err != nil || len(shown.Groups) == 0 || len(shown.Groups[0].Rules) == 0 {
		t.Fatalf("README.md's Alerts section has no rules block: %v", err)
	}
	exprs := map[string]string{}
	for _, r := range rf.Groups[0].Rules {
		exprs[r.Alert] = r.Expr
	}
	for _, r := range shown.Groups[0].Rules {
		if exprs[r.Alert] != r.Expr {
			t.Errorf("README.md shows %s as %q, the file has %q", r.Alert, r.Expr, exprs[r.Alert])
		}
	}
	// The alerts use the gauges made for them.
	for _, m := range []string{"dockward_module_consecutive_failures", "dockward_module_last_success_timestamp_seconds", "dockward_agent_next_backstop_timestamp_seconds", "dockward_drift_corrections_total"} {
		if !used[m] {
			t.Errorf("no rule uses %s", m)
		}
	}
}
