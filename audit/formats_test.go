package audit

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"os"
	"strconv"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// testdata/schema/sarif-schema-2.1.0.json is the OASIS SARIF 2.1.0 JSON
// schema, from
// https://github.com/oasis-tcs/sarif-spec/blob/main/sarif-2.1/schema/sarif-schema-2.1.0.json
// (commit e058381).
//
// -sarif FILE and -junit FILE validate a real run's output instead (the
// acceptance scenario 15-audit-cis runs them on the sandbox machine's).
var (
	sarifFile = flag.String("sarif", "", "validate this SARIF file")
	junitFile = flag.String("junit", "", "validate this JUnit XML file")
)

func validateSARIF(t *testing.T, doc []byte) {
	t.Helper()
	c := jsonschema.NewCompiler()
	sch, err := c.Compile("testdata/schema/sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(v); err != nil {
		t.Fatalf("SARIF does not validate: %v", err)
	}
}

func TestSARIFValidates(t *testing.T) {
	if *sarifFile != "" {
		b, err := os.ReadFile(*sarifFile)
		if err != nil {
			t.Fatal(err)
		}
		validateSARIF(t, b)
		return
	}
	rep := Judge(recorded(t), Options{Waivers: map[string]Waiver{"2.13": {Reason: "local logs"}}})
	var b bytes.Buffer
	if err := rep.WriteSARIF(&b, "test"); err != nil {
		t.Fatal(err)
	}
	validateSARIF(t, b.Bytes())
	var log struct {
		Runs []struct {
			Results []struct {
				RuleID       string
				Kind         string
				Suppressions []struct{ Justification string }
			}
		}
	}
	if err := json.Unmarshal(b.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, r := range log.Runs[0].Results {
		kinds[r.Kind]++
		if r.RuleID == "2.13" && (len(r.Suppressions) != 1 || r.Suppressions[0].Justification != "local logs") {
			t.Errorf("2.13 not suppressed with its reason: %+v", r)
		}
	}
	if kinds["pass"] != rep.Passed || kinds["fail"] != rep.Failed+rep.Waived || kinds["notApplicable"] != rep.Skipped {
		t.Errorf("result kinds %v, report %d passed %d failed %d waived %d skipped", kinds, rep.Passed, rep.Failed, rep.Waived, rep.Skipped)
	}
}

// No pure-Go XSD validator is maintained, so the JUnit output is checked
// with encoding/xml against what the Jenkins junit schema (jenkinsci
// xunit-plugin, junit-10.xsd) and Ant's require: a testsuites root;
// testsuite with name and tests; testcase with name and classname; time
// a decimal; failure and skipped with a message; every count matching
// its elements.
func validateJUnit(t *testing.T, doc []byte) {
	t.Helper()
	type msg struct {
		Message *string `xml:"message,attr"`
	}
	var root struct {
		XMLName  xml.Name
		Tests    string `xml:"tests,attr"`
		Failures string `xml:"failures,attr"`
		Skipped  string `xml:"skipped,attr"`
		Suites   []struct {
			Name     *string `xml:"name,attr"`
			Tests    *string `xml:"tests,attr"`
			Failures string  `xml:"failures,attr"`
			Skipped  string  `xml:"skipped,attr"`
			Time     string  `xml:"time,attr"`
			Cases    []struct {
				Name      *string `xml:"name,attr"`
				Classname *string `xml:"classname,attr"`
				Time      string  `xml:"time,attr"`
				Failure   []msg   `xml:"failure"`
				Error     []msg   `xml:"error"`
				Skipped   []msg   `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(doc, &root); err != nil {
		t.Fatalf("JUnit XML does not parse: %v", err)
	}
	if root.XMLName.Local != "testsuites" || len(root.Suites) == 0 {
		t.Fatalf("root %q with %d suites", root.XMLName.Local, len(root.Suites))
	}
	num := func(what, s string) int {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Errorf("%s %q is not a number", what, s)
		}
		return n
	}
	tot, totF, totS := 0, 0, 0
	for _, s := range root.Suites {
		if s.Name == nil || *s.Name == "" || s.Tests == nil {
			t.Fatalf("testsuite without name or tests")
		}
		if _, err := strconv.ParseFloat(s.Time, 64); err != nil {
			t.Errorf("suite %s time %q", *s.Name, s.Time)
		}
		f, sk := 0, 0
		for _, c := range s.Cases {
			if c.Name == nil || c.Classname == nil {
				t.Fatalf("testcase without name or classname in %s", *s.Name)
			}
			if _, err := strconv.ParseFloat(c.Time, 64); err != nil {
				t.Errorf("case %s time %q", *c.Name, c.Time)
			}
			if len(c.Failure)+len(c.Error)+len(c.Skipped) > 1 {
				t.Errorf("case %s has more than one outcome", *c.Name)
			}
			for _, m := range append(append(c.Failure, c.Skipped...), c.Error...) {
				if m.Message == nil || *m.Message == "" {
					t.Errorf("case %s: outcome without a message", *c.Name)
				}
			}
			f += len(c.Failure)
			sk += len(c.Skipped)
		}
		if num("tests", *s.Tests) != len(s.Cases) || num("failures", s.Failures) != f || num("skipped", s.Skipped) != sk {
			t.Errorf("suite %s counts %s/%s/%s, elements %d/%d/%d", *s.Name, *s.Tests, s.Failures, s.Skipped, len(s.Cases), f, sk)
		}
		tot, totF, totS = tot+len(s.Cases), totF+f, totS+sk
	}
	if num("tests", root.Tests) != tot || num("failures", root.Failures) != totF || num("skipped", root.Skipped) != totS {
		t.Errorf("testsuites counts %s/%s/%s, elements %d/%d/%d", root.Tests, root.Failures, root.Skipped, tot, totF, totS)
	}
}

func TestJUnitValidates(t *testing.T) {
	if *junitFile != "" {
		b, err := os.ReadFile(*junitFile)
		if err != nil {
			t.Fatal(err)
		}
		validateJUnit(t, b)
		return
	}
	rep := Judge(recorded(t), Options{Waivers: map[string]Waiver{"2.13": {Reason: "local logs"}}})
	var b bytes.Buffer
	if err := rep.WriteJUnit(&b); err != nil {
		t.Fatal(err)
	}
	validateJUnit(t, b.Bytes())
	if !bytes.Contains(b.Bytes(), []byte(`<failure message="HostConfig.Privileged: runs --privileged`)) {
		t.Errorf("junit lacks the privileged failure:\n%.2000s", b.String())
	}
}
