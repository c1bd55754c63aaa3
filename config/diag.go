package config

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/hashicorp/hcl/v2"
)

// WriteDiagnostics prints each diagnostic as a grep- and editor-friendly
// "file:line:col: severity: summary" line followed by HCL's own rendering:
// the source line with the range marked, and the detail.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics, color bool) error {
	tw := hcl.NewDiagnosticTextWriter(w, files, 100, color)
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		if d.Subject != nil {
			if _, err := fmt.Fprintf(w, "%s:%d:%d: %s: %s\n", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, sev, d.Summary); err != nil {
				return err
			}
		}
		if err := tw.WriteDiagnostic(d); err != nil {
			return err
		}
	}
	return nil
}

// DiagnosticsFormatVersion is the version of the JSON diagnostics format.
const DiagnosticsFormatVersion = "1"

// JSONPos is a position in the JSON diagnostics format.
type JSONPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// JSONRange is a source range in the JSON diagnostics format.
type JSONRange struct {
	Filename string  `json:"filename"`
	Start    JSONPos `json:"start"`
	End      JSONPos `json:"end"`
}

// JSONDiagnostic is one diagnostic in the JSON format.
type JSONDiagnostic struct {
	Severity string     `json:"severity"`
	Summary  string     `json:"summary"`
	Detail   string     `json:"detail,omitempty"`
	Range    *JSONRange `json:"range,omitempty"`
}

// JSONValidation is `validate --format json`'s output; an API.
type JSONValidation struct {
	FormatVersion string           `json:"format_version"`
	Valid         bool             `json:"valid"`
	Diagnostics   []JSONDiagnostic `json:"diagnostics"`
}

// ToJSON converts diagnostics to the JSON format.
func ToJSON(diags hcl.Diagnostics) JSONValidation {
	out := JSONValidation{FormatVersion: DiagnosticsFormatVersion, Valid: !diags.HasErrors(), Diagnostics: []JSONDiagnostic{}}
	for _, d := range diags {
		jd := JSONDiagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			jd.Severity = "warning"
		}
		if d.Subject != nil {
			jd.Range = &JSONRange{
				Filename: d.Subject.Filename,
				Start:    JSONPos{d.Subject.Start.Line, d.Subject.Start.Column, d.Subject.Start.Byte},
				End:      JSONPos{d.Subject.End.Line, d.Subject.End.Column, d.Subject.End.Byte},
			}
		}
		out.Diagnostics = append(out.Diagnostics, jd)
	}
	return out
}

// WriteJSON writes diagnostics in the JSON format.
func WriteJSON(w io.Writer, diags hcl.Diagnostics) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(ToJSON(diags))
}
