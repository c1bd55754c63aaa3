package subid

import (
	"bytes"
	"strconv"
	"testing"
)

// FuzzPasswd: /etc/passwd and /etc/group under --root come from an image
// that may come from elsewhere. Reading them never panics, a uid found is
// a decimal number that fits 32 bits, and a name is found only when a line
// starts with it.
func FuzzPasswd(f *testing.F) {
	for _, s := range []string{
		"root:x:0:0:root:/root:/bin/bash\ndockremap:x:999:999::/nonexistent:/usr/sbin/nologin\n",
		"dockremap:x:99999999999:1::/:/bin/false\n",
		"dockremap:x:-1:1\n", "dockremap:x:\n", "dockremap", "dockremap:x:0100:0\r\n",
		":x:1:1\n\n\n", "\x00dockremap:x:5:5\n", "dockremap:x:5", "dockremap:x:+5:5\n",
	} {
		f.Add([]byte(s), "dockremap")
	}
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		uid, ok := lookupUID(data, name)
		if uid != "" {
			n, err := strconv.ParseUint(uid, 10, 32)
			if err != nil || strconv.FormatUint(n, 10) != uid {
				t.Fatalf("uid %q is not a 32-bit decimal", uid)
			}
		}
		if ok && !bytes.HasPrefix(data, []byte(name+":")) && !bytes.Contains(data, []byte("\n"+name+":")) {
			t.Fatalf("found %q, which no line starts with", name)
		}
		if hasName(data, name) && !bytes.HasPrefix(data, []byte(name+":")) && !bytes.Contains(data, []byte("\n"+name+":")) {
			t.Fatalf("hasName %q, which no line starts with", name)
		}
	})
}
