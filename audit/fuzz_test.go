package audit

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/system"
)

// The Engine API answers are outside input: a compromised or broken dockerd
// (or whatever listens on the socket) writes them. Whatever the JSON, the
// checks and every output format never panic, and the report's counts add
// up to its findings.

func FuzzJudgeEngineAnswers(f *testing.F) {
	f.Add([]byte(`{"SecurityOptions":["name=apparmor","name=seccomp,profile=builtin","name=userns"],"LiveRestoreEnabled":true,"LoggingDriver":"json-file"}`),
		[]byte(`{"Id":"0123456789abcdef","Name":"/web","Config":{"User":"1000"},"HostConfig":{"Privileged":false,"CapAdd":["NET_BIND_SERVICE"],"ReadonlyRootfs":true,"SecurityOpt":["no-new-privileges"],"PidMode":"","NetworkMode":"bridge"}}`))
	f.Add([]byte(`{"SecurityOptions":null,"LoggingDriver":""}`), []byte(`{"Id":"x","Name":"","HostConfig":null}`))
	f.Add([]byte(`{"SecurityOptions":["name=userns,"],"LoggingDriver":"\u0000\n\u001b[31m"}`),
		[]byte(`{"Id":"","Name":"/","Config":null,"HostConfig":{"Privileged":true,"CapAdd":["ALL"],"PidMode":"host","NetworkMode":"host","Binds":["/:/host"]}}`))
	f.Add([]byte(`{}`), []byte(`{"Name":"/\u0000\n","HostConfig":{"Mounts":[{"Type":"bind","Source":"/var/run/docker.sock"}],"SecurityOpt":[""]}}`))
	f.Add([]byte(`null`), []byte(`{}`))
	f.Fuzz(func(t *testing.T, infoJSON, containerJSON []byte) {
		s := &Snapshot{}
		var info system.Info
		if json.Unmarshal(infoJSON, &info) == nil {
			s.Info = &info
		}
		var c container.InspectResponse
		if json.Unmarshal(containerJSON, &c) == nil {
			s.Containers = []container.InspectResponse{c}
		}
		r := Judge(s, Options{})
		n := map[Status]int{}
		for _, f := range r.Findings {
			n[f.Status]++
		}
		if r.Passed != n[Pass] || r.Failed != n[Fail] || r.Skipped != n[Skip] || r.Waived != n[Waived] {
			t.Fatalf("report counts %d/%d/%d/%d, findings %v", r.Passed, r.Failed, r.Skipped, r.Waived, n)
		}
		var b bytes.Buffer
		if err := r.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		if err := r.WriteJUnit(&b); err != nil {
			t.Fatal(err)
		}
		if err := r.WriteSARIF(&b, "test"); err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}
