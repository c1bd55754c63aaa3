package fakesystemd

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// ServePing serves the Docker Engine API's GET /_ping on a unix socket in a
// temporary directory, answering 200 "OK" while up returns true and 503
// otherwise, as a stand-in for dockerd. It returns the socket's path.
func ServePing(t testing.TB, up func() bool) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fakedocker")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_ping" {
			http.NotFound(w, r)
			return
		}
		if !up() {
			http.Error(w, "daemon not ready", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Api-Version", "1.45")
		_, _ = w.Write([]byte("OK"))
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		os.RemoveAll(dir)
	})
	return sock
}
