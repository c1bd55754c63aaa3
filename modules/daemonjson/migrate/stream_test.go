package migrate

import (
	"strings"
	"testing"
)

func TestLoadStreamError(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"quiet success", `{"stream":"Loaded image: busybox:local\n"}` + "\n", ""},
		{"empty", "", ""},
		{"progress then success", `{"status":"Loading layer","progressDetail":{"current":1,"total":2},"id":"abc"}{"stream":"Loaded image ID: sha256:abc\n"}`, ""},
		{"errorDetail", `{"errorDetail":{"message":"open /var/lib/docker/tmp/x: no space left on device"},"error":"open /var/lib/docker/tmp/x: no space left on device"}`, "daemon: open /var/lib/docker/tmp/x: no space left on device"},
		{"old daemons' error only", `{"error":"invalid tar header"}`, "daemon: invalid tar header"},
		{"error after progress", `{"status":"Loading layer"}` + "\n" + `{"errorDetail":{"message":"unexpected EOF"}}`, "daemon: unexpected EOF"},
		{"cut short", `{"stream":"Loaded`, "read the daemon's answer: unexpected EOF"},
		{"not JSON", `<html>502</html>`, "read the daemon's answer: invalid character '<' looking for beginning of value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := loadStreamError(strings.NewReader(tt.in))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("loadStreamError = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzLoadStreamError: the daemon's answer is outside input; reading it
// never panics or loops, and a message naming an error is never taken
// for success.
func FuzzLoadStreamError(f *testing.F) {
	f.Add(`{"stream":"Loaded image: a:b\n"}`)
	f.Add(`{"errorDetail":{"message":"x"}}`)
	f.Add(`{"error":"x"}{"stream":"y"}`)
	f.Add(`[1,2]`)
	f.Fuzz(func(t *testing.T, in string) {
		err := loadStreamError(strings.NewReader(in))
		if err == nil && strings.Contains(in, `"error":"x"`) && strings.HasPrefix(in, `{"error":"x"}`) {
			t.Errorf("a stream that opens with an error message was taken for success: %q", in)
		}
	})
}
