package audit

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"strings"
)

// The JUnit XML that CI systems read (the Jenkins/Ant junit schema): one
// testsuite per benchmark section, one testcase per finding. A failed
// finding has a <failure>; skipped and waived ones a <skipped> whose
// message says which and why (JUnit has no "waived").
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Hostname  string      `xml:"hostname,attr"`
	ID        int         `xml:"id,attr"`
	Package   string      `xml:"package,attr"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure"`
	Skipped   *junitMessage `xml:"skipped"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the report as JUnit XML.
func (r *Report) WriteJUnit(w io.Writer) error {
	host, _ := os.Hostname()
	out := junitSuites{Name: "dockward audit (" + r.Benchmark + ")", Time: seconds(r.Duration)}
	index := map[string]int{}
	for _, f := range r.Findings {
		i, ok := index[f.Section]
		if !ok {
			i = len(out.Suites)
			index[f.Section] = i
			out.Suites = append(out.Suites, junitSuite{Name: f.Section, ID: i, Package: "dockward.audit",
				Hostname: host, Time: "0", Timestamp: r.Start.Format("2006-01-02T15:04:05")})
		}
		s := &out.Suites[i]
		c := junitCase{Name: fmt.Sprintf("%s %s [%s]", f.ID, f.Title, f.Target), Classname: "dockward.audit." + f.Check, Time: "0", SystemOut: f.Detail}
		switch f.Status {
		case Fail:
			msg := f.Detail
			if f.Field != "" {
				msg = f.Field + ": " + msg
			}
			c.Failure = &junitMessage{Message: msg, Type: f.ID, Text: msg}
			s.Failures++
		case Skip:
			c.Skipped = &junitMessage{Message: "skipped: " + f.Reason}
			s.Skipped++
		case Waived:
			c.Skipped = &junitMessage{Message: "waived: " + f.Reason, Text: f.Detail}
			s.Skipped++
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	for _, s := range out.Suites {
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Skipped += s.Skipped
	}
	var b strings.Builder
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func seconds(d float64) string { return fmt.Sprintf("%.3f", d) }
