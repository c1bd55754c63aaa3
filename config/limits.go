package config

import (
	"bytes"
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Limits on what the decoder is handed. A configuration is written by an
// operator and a few KB long; these bound what a hostile or broken file
// can cost, and are far above any real one.
const (
	// MaxFileSize bounds the configuration file. The embedded default is
	// about 4 KB.
	MaxFileSize = 128 << 10
	// MaxTokens bounds the tokens (names, numbers, operators, brackets,
	// string pieces) of the file. HCL's syntax tree costs about 500 bytes
	// a token: a 1 MiB file of a million empty lists took 570 MB to
	// decode, four times the resident agent's MemoryMax. The default
	// configuration has about 700; 50,000 decode in about 30 MB.
	MaxTokens = 50000
	// MaxNesting bounds how deeply brackets, braces, parentheses, strings
	// and template sequences nest. HCL's parser is recursive: 100,000
	// levels (200 KB) exhausted Go's 1 GB stack, a fatal error no recover
	// catches. A real configuration nests about six levels.
	MaxNesting = 64
	// MaxDiagnostics bounds the diagnostics reported for one file; one
	// more says how many were left out.
	MaxDiagnostics = 100
)

// checkLimits refuses a file too large or too deeply nested for the
// parser, before the parser sees it. It walks HCL's own token stream
// (hclsyntax.LexConfig, a state machine with no recursion), so strings,
// heredocs, comments and template sequences are told apart from code
// exactly as the parser will tell them apart.
func checkLimits(filename string, src []byte) hcl.Diagnostics {
	if len(src) > MaxFileSize {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Configuration too large",
			Detail:  fmt.Sprintf("The file is larger than the %d bytes (128 KiB) dockward reads; a configuration is a few KB.", MaxFileSize),
			Subject: &hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos},
		}}
	}
	tokens, _ := hclsyntax.LexConfig(src, filename, hcl.InitialPos)
	// open holds the opening token of every level now open. A closing
	// token that does not match the innermost level is left for the parser
	// to report; it closes nothing here, so the count never undercounts.
	var open []hclsyntax.TokenType
	for _, tok := range tokens {
		switch tok.Type {
		case hclsyntax.TokenOBrace, hclsyntax.TokenOBrack, hclsyntax.TokenOParen,
			hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl,
			hclsyntax.TokenOQuote, hclsyntax.TokenOHeredoc:
			open = append(open, tok.Type)
			if len(open) > MaxNesting {
				r := tok.Range
				return hcl.Diagnostics{{
					Severity: hcl.DiagError, Summary: "Nested too deeply",
					Detail: fmt.Sprintf("Values, blocks and templates may nest at most %d levels; this one opens level %d. A configuration needs a handful.",
						MaxNesting, len(open)),
					Subject: &r,
				}}
			}
		case hclsyntax.TokenCBrace, hclsyntax.TokenTemplateSeqEnd:
			open = closeLevel(open, hclsyntax.TokenOBrace, hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl)
		case hclsyntax.TokenCBrack:
			open = closeLevel(open, hclsyntax.TokenOBrack)
		case hclsyntax.TokenCParen:
			open = closeLevel(open, hclsyntax.TokenOParen)
		case hclsyntax.TokenCQuote:
			open = closeLevel(open, hclsyntax.TokenOQuote)
		case hclsyntax.TokenCHeredoc:
			open = closeLevel(open, hclsyntax.TokenOHeredoc)
		}
	}
	if len(tokens) > MaxTokens {
		r := tokens[MaxTokens].Range
		return hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Configuration too large",
			Detail: fmt.Sprintf("The file has %d tokens (names, values, operators, brackets), more than the %d dockward decodes; this is token %d. A configuration has a few hundred.",
				len(tokens), MaxTokens, MaxTokens+1),
			Subject: &r,
		}}
	}
	return nil
}

func closeLevel(open []hclsyntax.TokenType, matches ...hclsyntax.TokenType) []hclsyntax.TokenType {
	if len(open) == 0 {
		return open
	}
	for _, m := range matches {
		if open[len(open)-1] == m {
			return open[:len(open)-1]
		}
	}
	return open
}

// checkNumberLiterals refuses number literals that no float64 holds, or
// that a float64 rounds to zero: dockerd reads JSON numbers into float64
// and int, and HCL itself turns 1e999999999 into +Inf and 1e-999999999
// into 0 without a word. The literal's own text is checked, so that the
// diagnostic points at it whichever block it is in.
func checkNumberLiterals(f *hcl.File) hcl.Diagnostics {
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	var diags hcl.Diagnostics
	_ = hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
		lit, ok := n.(*hclsyntax.LiteralValueExpr)
		if !ok || lit.Val.Type() != cty.Number || lit.Val.IsNull() {
			return nil
		}
		r := lit.SrcRange
		if r.Start.Byte < 0 || r.End.Byte > len(f.Bytes) || r.Start.Byte >= r.End.Byte {
			return nil
		}
		text := string(f.Bytes[r.Start.Byte:r.End.Byte])
		if msg := float64Problem(text); msg != "" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Number out of range", Detail: msg, Subject: &r})
		}
		return nil
	})
	return diags
}

// dropCovered drops the diagnostics whose subject contains the start of
// one of the covering diagnostics' subjects (all in one file).
func dropCovered(diags, covering hcl.Diagnostics) hcl.Diagnostics {
	if len(covering) == 0 {
		return diags
	}
	starts := make([]int, 0, len(covering))
	for _, c := range covering {
		starts = append(starts, c.Subject.Start.Byte)
	}
	sort.Ints(starts)
	var out hcl.Diagnostics
	for _, d := range diags {
		if d.Subject != nil {
			i := sort.SearchInts(starts, d.Subject.Start.Byte)
			if i < len(starts) && d.Subject.ContainsOffset(starts[i]) {
				continue
			}
		}
		out = append(out, d)
	}
	return out
}

// float64Problem says why the number written as text is not one a float64
// holds, or "" when it is.
func float64Problem(text string) string {
	f, err := strconv.ParseFloat(text, 64)
	switch {
	case err != nil && math.IsInf(f, 0):
		return fmt.Sprintf("%s is beyond what a float64 holds (about ±1.8e308), the numbers dockerd reads.", text)
	case err != nil:
		return "" // not a plain literal; the parser has its own say
	case f == 0 && nonZeroMantissa(text):
		return fmt.Sprintf("%s is not zero, but a float64 (the numbers dockerd reads) rounds it to zero; write 0 if that is meant.", text)
	}
	return ""
}

func nonZeroMantissa(text string) bool {
	for _, c := range text {
		switch {
		case c == 'e' || c == 'E':
			return false
		case c >= '1' && c <= '9':
			return true
		}
	}
	return false
}

// CheckNumber refuses an evaluated number that JSON cannot hold: not
// finite (1/0), beyond a float64, or not zero but rounded to zero by a
// float64. Modules that write numbers out call it on values computed by
// expressions, which no literal check sees.
func CheckNumber(v cty.Value) error {
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.Number {
		return nil
	}
	bf := v.AsBigFloat()
	if bf.IsInf() {
		return fmt.Errorf("the value is infinite (%s), which JSON cannot hold", bf.Text('g', 10))
	}
	f, _ := bf.Float64()
	switch {
	case math.IsInf(f, 0):
		return fmt.Errorf("%s is beyond what a float64 holds (about ±1.8e308), the numbers dockerd reads", bf.Text('g', 10))
	case f == 0 && bf.Sign() != 0:
		return fmt.Errorf("%s is not zero, but a float64 (the numbers dockerd reads) rounds it to zero", bf.Text('g', 10))
	}
	return nil
}

// capDiagnostics orders diagnostics by position (those about no position
// first, in the order found) so that a file's problems read top to bottom
// and two runs print the same, and keeps the first MaxDiagnostics, adding
// one that says how many more there are. Rendering a diagnostic reads its
// source lines, so 10,000 of them took minutes; a hundred is plenty to
// start fixing.
func capDiagnostics(diags hcl.Diagnostics) hcl.Diagnostics {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		case a.Start.Byte != b.Start.Byte:
			return a.Start.Byte < b.Start.Byte
		}
		return a.End.Byte < b.End.Byte
	})
	if len(diags) <= MaxDiagnostics {
		return diags
	}
	more := diags[MaxDiagnostics:]
	errs, warns := 0, 0
	for _, d := range more {
		if d.Severity == hcl.DiagError {
			errs++
		} else {
			warns++
		}
	}
	sev := hcl.DiagWarning
	if errs > 0 {
		sev = hcl.DiagError
	}
	last := diags[MaxDiagnostics-1].Subject
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%d more problem(s) are not shown (%d error(s), %d warning(s))", len(more), errs, warns)
	if last != nil {
		fmt.Fprintf(&buf, " after %s:%d:%d", last.Filename, last.Start.Line, last.Start.Column)
	}
	buf.WriteString("; fix these and run again.")
	out := append(hcl.Diagnostics{}, diags[:MaxDiagnostics]...)
	// No range: it is about the file, and its source line would repeat
	// the last one shown.
	return append(out, &hcl.Diagnostic{Severity: sev, Summary: "Too many problems", Detail: buf.String()})
}
