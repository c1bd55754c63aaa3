package config

import "github.com/hashicorp/hcl/v2"

// ErrAt is an error diagnostic at rng: what every block decoder reports,
// so that it names file:line:col.
func ErrAt(rng hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng.Ptr()}
}

// WarnAt is a warning diagnostic at rng.
func WarnAt(rng hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: summary, Detail: detail, Subject: rng.Ptr()}
}
