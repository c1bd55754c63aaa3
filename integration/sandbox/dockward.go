package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// DockwardPath is where InstallDockward puts the binary in the machine.
const DockwardPath = "/usr/local/bin/dockward"

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// DockwardBinary returns the dockward binary to test: $DOCKWARD_BIN when
// set (make test passes the bin/dockward it just built), otherwise one built
// from this module once per test process, static so that it runs on the
// machine's libc as on the host's.
func DockwardBinary() (string, error) {
	buildOnce.Do(func() {
		if p := os.Getenv("DOCKWARD_BIN"); p != "" {
			buildBin, buildErr = filepath.Abs(p)
			if buildErr == nil {
				_, buildErr = os.Stat(buildBin)
			}
			return
		}
		buildBin, buildErr = buildDockward()
	})
	return buildBin, buildErr
}

func buildDockward() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module root (go env GOMOD): %w", err)
	}
	modRoot := filepath.Dir(strings.TrimSpace(string(gomod)))
	dir, err := os.MkdirTemp("", "dockward-bin-")
	if err != nil {
		return "", err
	}
	// The binary outlives any one test of the process; the OS temp cleaner
	// or the next build removes it.
	out := filepath.Join(dir, "dockward")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/dockward")
	cmd.Dir = modRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/dockward in %s: %w\n%s", modRoot, err, b)
	}
	return out, nil
}

// InstallDockward copies the dockward binary (see DockwardBinary) to
// /usr/local/bin/dockward in the machine.
func (m *Machine) InstallDockward(t testing.TB) {
	t.Helper()
	if err := m.installDockward(); err != nil {
		t.Fatal(err)
	}
}

func (m *Machine) installDockward() error {
	bin, err := DockwardBinary()
	if err != nil {
		return err
	}
	return m.CopyIn(bin, DockwardPath, 0o755)
}

// CopyIn copies a host file into the machine with the given mode.
func (m *Machine) CopyIn(hostPath, path string, perm os.FileMode) error {
	data, err := os.ReadFile(hostPath)
	if err != nil {
		return fmt.Errorf("copy %s into machine %s: %w", hostPath, m.name, err)
	}
	dst := filepath.Join(m.Root(), path)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("copy %s into machine %s: %w", hostPath, m.name, err)
	}
	// Write a sibling and rename, so a running copy is never overwritten in place.
	tmp := dst + ".tmp-sandbox"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return fmt.Errorf("copy %s into machine %s: %w", hostPath, m.name, err)
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return fmt.Errorf("copy %s into machine %s: %w", hostPath, m.name, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("copy %s into machine %s: %w", hostPath, m.name, err)
	}
	return nil
}

// CopyDirIn copies a host directory tree (regular files and directories)
// into the machine at path, keeping file modes.
func (m *Machine) CopyDirIn(hostDir, path string) error {
	return filepath.WalkDir(hostDir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(hostDir, p)
		dst := filepath.Join(path, rel)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(m.Root(), dst), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return m.CopyIn(p, dst, fi.Mode().Perm())
	})
}
