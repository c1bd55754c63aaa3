package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/mitchellh/go-wordwrap"
)

// WriteDiagnostics prints each diagnostic as a grep- and editor-friendly
// "file:line:col: severity: summary" line followed by HCL's rendering: the
// source line with the range marked, and the detail.
//
// The rendering is HCL's (hcl.NewDiagnosticTextWriter) reproduced, with
// one difference: HCL rescans the whole file from its first byte for every
// diagnostic, counting grapheme clusters, which made 10,000 diagnostics on
// one file take minutes. Here each file's lines are indexed once.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics, color bool) error {
	hw := hcl.NewDiagnosticTextWriter(w, files, diagWidth, color)
	idx := map[string]*lineIndex{}
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
		if d.Subject == nil || d.EvalContext != nil || files[d.Subject.Filename] == nil {
			// Nothing to index (or values to show, which only HCL's
			// writer does; dockward evaluates without variables).
			if err := hw.WriteDiagnostic(d); err != nil {
				return err
			}
			continue
		}
		f := files[d.Subject.Filename]
		li := idx[d.Subject.Filename]
		if li == nil {
			li = newLineIndex(f.Bytes)
			idx[d.Subject.Filename] = li
		}
		if err := writeDiagnostic(w, f, li, d, color); err != nil {
			return err
		}
	}
	return nil
}

// diagWidth is where details are wrapped.
const diagWidth = 100

// lineIndex holds where each line of a file starts.
type lineIndex struct {
	src    []byte
	starts []int
}

func newLineIndex(src []byte) *lineIndex {
	li := &lineIndex{src: src, starts: []int{0}}
	for i, c := range src {
		if c == '\n' && i+1 < len(src) {
			li.starts = append(li.starts, i+1)
		}
	}
	return li
}

// line returns the range of line i (0-based) without its line ending, as
// bufio.ScanLines (which HCL's writer uses) gives it.
func (li *lineIndex) line(filename string, i int) hcl.Range {
	start := li.starts[i]
	end := len(li.src)
	if i+1 < len(li.starts) {
		end = li.starts[i+1] - 1
	} else if end > start && li.src[end-1] == '\n' {
		end--
	}
	if end > start && li.src[end-1] == '\r' {
		end--
	}
	return hcl.Range{Filename: filename,
		Start: hcl.Pos{Line: i + 1, Column: 1, Byte: start},
		End:   hcl.Pos{Line: i + 1, Column: 1 + end - start, Byte: end}}
}

func writeDiagnostic(w io.Writer, f *hcl.File, li *lineIndex, d *hcl.Diagnostic, color bool) error {
	var colorCode, highlightCode, resetCode string
	if color {
		switch d.Severity {
		case hcl.DiagError:
			colorCode = "\x1b[31m"
		case hcl.DiagWarning:
			colorCode = "\x1b[33m"
		}
		resetCode = "\x1b[0m"
		highlightCode = "\x1b[1;4m"
	}
	severity := "Error"
	if d.Severity == hcl.DiagWarning {
		severity = "Warning"
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s%s%s: %s\n\n", colorCode, severity, resetCode, d.Summary)

	snip := *d.Subject
	highlight := snip
	if d.Context != nil {
		snip = hcl.RangeOver(snip, *d.Context)
	}
	// An empty range cannot be shown; one character past it can.
	if snip.Empty() {
		snip.End.Byte++
		snip.End.Column++
	}
	if highlight.Empty() {
		highlight.End.Byte++
		highlight.End.Column++
	}
	context := ""
	if cs, ok := f.Nav.(interface{ ContextString(int) string }); ok {
		if c := cs.ContextString(d.Subject.Start.Byte); c != "" {
			context = ", in " + c
		}
	}
	fmt.Fprintf(&buf, "  on %s line %d%s:\n", d.Subject.Filename, d.Subject.Start.Line, context)
	// The first line that can overlap: the one before the line holding
	// the start (a range may start at a line's end).
	first := sort.Search(len(li.starts), func(i int) bool { return li.starts[i] > snip.Start.Byte }) - 2
	for i := max(first, 0); i < len(li.starts) && li.starts[i] <= snip.End.Byte; i++ {
		lr := li.line(snip.Filename, i)
		if !lr.Overlaps(snip) {
			continue
		}
		before, hl, after := lr.PartitionAround(highlight)
		if hl.Empty() {
			fmt.Fprintf(&buf, "%4d: %s\n", lr.Start.Line, lr.SliceBytes(li.src))
		} else {
			fmt.Fprintf(&buf, "%4d: %s%s%s%s%s\n", lr.Start.Line, before.SliceBytes(li.src), highlightCode, hl.SliceBytes(li.src), resetCode, after.SliceBytes(li.src))
		}
	}
	buf.WriteByte('\n')
	if d.Detail != "" {
		fmt.Fprintf(&buf, "%s\n\n", wordwrap.WrapString(d.Detail, diagWidth))
	}
	_, err := w.Write(buf.Bytes())
	return err
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
