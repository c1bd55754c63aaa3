package agent

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// The exclusive holder's PID is in the lock file until it releases it; the
// next holder that finds a PID there knows that run was killed and removes
// its temp files from the state directory, and only those.
func TestLockCleansAfterAKilledHolder(t *testing.T) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	log := logrus.NewEntry(l)
	state := filepath.Join(t.TempDir(), "state")
	ctx := context.Background()

	lk, err := AcquireLock(ctx, state, true, time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(state, "lock")); string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("lock file while held: %q", b)
	}
	if err := lk.Release(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(state, "lock")); len(b) != 0 {
		t.Errorf("lock file after release: %q", b)
	}

	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(dead.Process.Pid)
	litter := filepath.Join(state, "docker_daemon", ".owned.json.dockward-"+pid+"-x.tmp")
	live := filepath.Join(state, ".last-report.json.dockward-"+strconv.Itoa(os.Getpid())+"-y.tmp")
	for _, p := range []string{litter, live} {
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A released lock: nobody was killed, nothing is looked for.
	lk, err = AcquireLock(ctx, state, true, time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	lk.Release()
	if _, err := os.Stat(litter); err != nil {
		t.Fatalf("cleaned although no run was killed: %v", err)
	}
	// A killed holder left its PID.
	if err := os.WriteFile(filepath.Join(state, "lock"), []byte(pid+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lk, err = AcquireLock(ctx, state, true, time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Release()
	if _, err := os.Stat(litter); !os.IsNotExist(err) {
		t.Errorf("the killed run's temp file is still there (%v)", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("removed a live process's temp file: %v", err)
	}
}
