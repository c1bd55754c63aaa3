package audit

import (
	"encoding/json"
	"io"
	"strings"
	"time"
)

// SARIF 2.1.0, which code-scanning dashboards read: one rule per check,
// one result per finding. Passed findings are results of kind "pass",
// skipped ones "notApplicable", failed ones "fail" (level error); a waived
// finding is a "fail" with an accepted external suppression carrying the
// waiver's reason, so that a dashboard shows it as suppressed, not passed.

const sarifSchema = "https://json.schemastore.org/sarif-2.1.0.json"

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	Results     []sarifResult     `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID               string         `json:"id"`
	Name             string         `json:"name"`
	ShortDescription sarifText      `json:"shortDescription"`
	Properties       map[string]any `json:"properties,omitempty"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool   `json:"executionSuccessful"`
	StartTimeUTC        string `json:"startTimeUtc,omitempty"`
	EndTimeUTC          string `json:"endTimeUtc,omitempty"`
}

type sarifResult struct {
	RuleID       string             `json:"ruleId"`
	RuleIndex    int                `json:"ruleIndex"`
	Kind         string             `json:"kind"`
	Level        string             `json:"level"`
	Message      sarifText          `json:"message"`
	Locations    []sarifLocation    `json:"locations,omitempty"`
	Suppressions []sarifSuppression `json:"suppressions,omitempty"`
	Properties   map[string]any     `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysical `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogical `json:"logicalLocations,omitempty"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifLogical struct {
	Name               string `json:"name"`
	FullyQualifiedName string `json:"fullyQualifiedName,omitempty"`
	Kind               string `json:"kind,omitempty"`
}

type sarifSuppression struct {
	Kind          string `json:"kind"`
	Status        string `json:"status"`
	Justification string `json:"justification"`
}

// WriteSARIF writes the report as a SARIF 2.1.0 log.
func (r *Report) WriteSARIF(w io.Writer, version string) error {
	run := sarifRun{Tool: sarifTool{Driver: sarifDriver{Name: "dockward", Version: version,
		InformationURI: "https://github.com/dockward/dockward", Rules: []sarifRule{}}}, Results: []sarifResult{}}
	ruleIndex := map[string]int{}
	for _, f := range r.Findings {
		i, ok := ruleIndex[f.ID]
		if !ok {
			i = len(run.Tool.Driver.Rules)
			ruleIndex[f.ID] = i
			run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{ID: f.ID, Name: f.Check,
				ShortDescription: sarifText{Text: f.Title}, Properties: map[string]any{"section": f.Section, "benchmark": r.Benchmark}})
		}
		res := sarifResult{RuleID: f.ID, RuleIndex: i, Message: sarifText{Text: sarifMessage(f)},
			Locations: []sarifLocation{location(f)}, Properties: map[string]any{"status": string(f.Status)}}
		if f.Field != "" {
			res.Properties["field"] = f.Field
		}
		switch f.Status {
		case Pass:
			res.Kind, res.Level = "pass", "none"
		case Skip:
			res.Kind, res.Level = "notApplicable", "none"
		case Fail:
			res.Kind, res.Level = "fail", "error"
		case Waived:
			res.Kind, res.Level = "fail", "error"
			res.Suppressions = []sarifSuppression{{Kind: "external", Status: "accepted", Justification: f.Reason}}
		}
		run.Results = append(run.Results, res)
	}
	inv := sarifInvocation{ExecutionSuccessful: true}
	if !r.Start.IsZero() {
		inv.StartTimeUTC = r.Start.Format(time.RFC3339Nano)
		inv.EndTimeUTC = r.Start.Add(time.Duration(r.Duration * float64(time.Second))).Format(time.RFC3339Nano)
	}
	run.Invocations = []sarifInvocation{inv}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{Schema: sarifSchema, Version: "2.1.0", Runs: []sarifRun{run}})
}

func sarifMessage(f Finding) string {
	parts := []string{f.ID + " " + f.Title + ": " + f.Target}
	if f.Field != "" {
		parts = append(parts, f.Field)
	}
	if f.Detail != "" {
		parts = append(parts, f.Detail)
	}
	if f.Reason != "" {
		parts = append(parts, string(f.Status)+": "+f.Reason)
	}
	return strings.Join(parts, " - ")
}

// location is a file's URI for a file target, else a logical location
// (a container, the daemon), qualified by the field at fault.
func location(f Finding) sarifLocation {
	if strings.HasPrefix(f.Target, "/") {
		return sarifLocation{PhysicalLocation: &sarifPhysical{ArtifactLocation: sarifArtifact{URI: "file://" + f.Target}}}
	}
	fq := f.Target
	if f.Field != "" {
		fq += "/" + f.Field
	}
	return sarifLocation{LogicalLocations: []sarifLogical{{Name: f.Target, FullyQualifiedName: fq, Kind: "resource"}}}
}
