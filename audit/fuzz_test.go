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
// checks and the report never panic, and a document with no host
// configuration fails the container rather than passing it.

func FuzzCheckDaemon(f *testing.F) {
	f.Add([]byte(`{"SecurityOptions":["name=apparmor","name=seccomp,profile=builtin","name=userns"],"LiveRestoreEnabled":true,"LoggingDriver":"json-file"}`))
	f.Add([]byte(`{"SecurityOptions":null,"LoggingDriver":""}`))
	f.Add([]byte(`{"SecurityOptions":["name=userns,"],"LoggingDriver":"\u0000\n\u001b[31m"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, answer []byte) {
		var info system.Info
		if json.Unmarshal(answer, &info) != nil {
			return
		}
		r := newReport(CheckDaemon(info))
		if err := r.WriteText(&bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzCheckContainer(f *testing.F) {
	f.Add([]byte(`{"Id":"0123456789abcdef","Name":"/web","Config":{"User":"1000"},"HostConfig":{"Privileged":false,"CapAdd":["NET_BIND_SERVICE"],"ReadonlyRootfs":true,"SecurityOpt":["no-new-privileges"],"PidMode":"","NetworkMode":"bridge"}}`))
	f.Add([]byte(`{"Id":"x","Name":"","HostConfig":null}`))
	f.Add([]byte(`{"Id":"","Name":"/","Config":null,"HostConfig":{"Privileged":true,"CapAdd":["ALL"],"PidMode":"host","NetworkMode":"host","Binds":["/:/host"]}}`))
	f.Add([]byte(`{"Name":"/\u0000\n","HostConfig":{"Mounts":[{"Type":"bind","Source":"/var/run/docker.sock"}],"SecurityOpt":[""]}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, answer []byte) {
		var c container.InspectResponse
		if json.Unmarshal(answer, &c) != nil {
			return
		}
		fs := CheckContainer(c)
		if c.HostConfig == nil {
			if len(fs) != 1 || fs[0].Pass {
				t.Fatalf("no host configuration, findings %+v", fs)
			}
		}
		r := newReport(fs)
		if r.Passed+r.Failed != len(fs) {
			t.Fatalf("report counts %d+%d for %d findings", r.Passed, r.Failed, len(fs))
		}
		if err := r.WriteText(&bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
	})
}
