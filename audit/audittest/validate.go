// Package audittest validates `dockward audit`'s machine-readable outputs,
// for the audit package's unit tests and the real-host tests alike.
package audittest

import (
	"bytes"
	_ "embed"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// sarifSchema is the OASIS SARIF 2.1.0 JSON schema, from
// https://github.com/oasis-tcs/sarif-spec/blob/main/sarif-2.1/schema/sarif-schema-2.1.0.json
// (commit e058381), unchanged.
//
//go:embed sarif-schema-2.1.0.json
var sarifSchema []byte

var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(sarifSchema))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	const url = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
})

// ValidateSARIF validates doc against the SARIF 2.1.0 schema.
func ValidateSARIF(doc []byte) error {
	sch, err := compiled()
	if err != nil {
		return fmt.Errorf("compile the SARIF schema: %w", err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("SARIF is not JSON: %w", err)
	}
	return sch.Validate(v)
}

// ValidateJUnit checks doc against what the Jenkins junit schema
// (jenkinsci/xunit-plugin, junit-10.xsd) and Ant's require. No pure-Go XSD
// validator is maintained, so this is encoding/xml and the schema's
// required elements and attributes: a testsuites root; testsuite with name
// and tests; testcase with name and classname; times decimal; failure,
// error and skipped with a message, at most one per testcase; every count
// matching its elements.
func ValidateJUnit(doc []byte) error {
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
		return fmt.Errorf("JUnit XML does not parse: %w", err)
	}
	if root.XMLName.Local != "testsuites" || len(root.Suites) == 0 {
		return fmt.Errorf("root element %q with %d testsuites, want testsuites with at least one", root.XMLName.Local, len(root.Suites))
	}
	var errs []error
	num := func(what, s string) int {
		n, err := strconv.Atoi(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q is not a number", what, s))
		}
		return n
	}
	decimal := func(what, s string) {
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			errs = append(errs, fmt.Errorf("%s time %q is not a decimal", what, s))
		}
	}
	tot, totF, totS := 0, 0, 0
	for _, s := range root.Suites {
		if s.Name == nil || *s.Name == "" || s.Tests == nil {
			return errors.New("a testsuite without name or tests")
		}
		decimal("testsuite "+*s.Name, s.Time)
		f, sk := 0, 0
		for _, c := range s.Cases {
			if c.Name == nil || c.Classname == nil {
				return fmt.Errorf("a testcase without name or classname in %s", *s.Name)
			}
			decimal("testcase "+*c.Name, c.Time)
			if len(c.Failure)+len(c.Error)+len(c.Skipped) > 1 {
				errs = append(errs, fmt.Errorf("testcase %s has more than one outcome", *c.Name))
			}
			for _, m := range append(append(c.Failure, c.Skipped...), c.Error...) {
				if m.Message == nil || *m.Message == "" {
					errs = append(errs, fmt.Errorf("testcase %s: an outcome without a message", *c.Name))
				}
			}
			f += len(c.Failure)
			sk += len(c.Skipped)
		}
		if num("tests", *s.Tests) != len(s.Cases) || num("failures", s.Failures) != f || num("skipped", s.Skipped) != sk {
			errs = append(errs, fmt.Errorf("testsuite %s counts %s/%s/%s, elements %d/%d/%d", *s.Name, *s.Tests, s.Failures, s.Skipped, len(s.Cases), f, sk))
		}
		tot, totF, totS = tot+len(s.Cases), totF+f, totS+sk
	}
	if num("tests", root.Tests) != tot || num("failures", root.Failures) != totF || num("skipped", root.Skipped) != totS {
		errs = append(errs, fmt.Errorf("testsuites counts %s/%s/%s, elements %d/%d/%d", root.Tests, root.Failures, root.Skipped, tot, totF, totS))
	}
	return errors.Join(errs...)
}
