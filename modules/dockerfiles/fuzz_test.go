package dockerfiles

import (
	"strings"
	"testing"
)

func FuzzParseIDs(f *testing.F) {
	f.Add([]byte("root:x:0:0::/root:/bin/sh\ndocker:x:998:\n+nis\n::::\nbad:x:-1:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		names, back := map[string]int{}, map[int]string{}
		parseIDs(data, names, back)
		for n, id := range names {
			if n == "" || id < 0 || strings.Contains(n, ":") {
				t.Fatalf("%q -> %d", n, id)
			}
		}
	})
}

func TestParseIDs(t *testing.T) {
	names, back := map[string]int{}, map[int]string{}
	parseIDs([]byte("root:x:0:0::/root:/bin/sh\ntoor:x:0:0::/root:/bin/sh\ndocker:x:998:\nroot:x:5:\n+nis\n"), names, back)
	if names["root"] != 0 || names["docker"] != 998 || back[0] != "root" || len(names) != 3 {
		t.Fatalf("%v %v", names, back)
	}
}
