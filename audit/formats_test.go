package audit

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"testing"

	"github.com/dockward/dockward/audit/audittest"
)

// The SARIF output validates against the SARIF 2.1.0 JSON schema and the
// JUnit output against the junit schema's required structure
// (audit/audittest says how).
//
// -sarif FILE and -junit FILE validate a real run's output instead (the
// acceptance scenario 15-audit-cis runs them on the sandbox machine's).
var (
	sarifFile = flag.String("sarif", "", "validate this SARIF file")
	junitFile = flag.String("junit", "", "validate this JUnit XML file")
)

func validateSARIF(t *testing.T, doc []byte) {
	t.Helper()
	if err := audittest.ValidateSARIF(doc); err != nil {
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

func validateJUnit(t *testing.T, doc []byte) {
	t.Helper()
	if err := audittest.ValidateJUnit(doc); err != nil {
		t.Fatalf("JUnit does not validate: %v", err)
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
