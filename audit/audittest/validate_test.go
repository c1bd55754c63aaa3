package audittest

import (
	"strings"
	"testing"
)

// The validators reject what breaks the formats, so a passing validation
// means something.
func TestValidatorsReject(t *testing.T) {
	for name, doc := range map[string]string{
		"wrong version": `{"version": "2.0.0", "runs": []}`,
		"no runs":       `{"version": "2.1.0"}`,
		"bad kind":      `{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"message": {"text": "m"}, "kind": "waived"}]}]}`,
	} {
		if err := ValidateSARIF([]byte(doc)); err == nil {
			t.Errorf("SARIF %s validates", name)
		}
	}
	if err := ValidateSARIF([]byte(`{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"message": {"text": "m"}, "kind": "pass"}]}]}`)); err != nil {
		t.Errorf("minimal SARIF: %v", err)
	}
	for name, doc := range map[string]string{
		"root":      `<testsuite name="a" tests="0"/>`,
		"counts":    `<testsuites tests="1" failures="0" skipped="0"><testsuite name="a" tests="2" failures="0" skipped="0" time="0"><testcase name="x" classname="c" time="0"/></testsuite></testsuites>`,
		"classname": `<testsuites tests="1" failures="0" skipped="0"><testsuite name="a" tests="1" failures="0" skipped="0" time="0"><testcase name="x" time="0"/></testsuite></testsuites>`,
		"message":   `<testsuites tests="1" failures="1" skipped="0"><testsuite name="a" tests="1" failures="1" skipped="0" time="0"><testcase name="x" classname="c" time="0"><failure/></testcase></testsuite></testsuites>`,
	} {
		if err := ValidateJUnit([]byte(doc)); err == nil {
			t.Errorf("JUnit %s validates", name)
		} else if strings.TrimSpace(err.Error()) == "" {
			t.Errorf("JUnit %s: empty error", name)
		}
	}
}
