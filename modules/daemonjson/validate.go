package daemonjson

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// `dockerd --validate --config-file F` (Docker 23 and newer) loads F the way
// dockerd does at start, with the command line flags given, and exits 0
// ("configuration OK") or 1 with the reason. It catches what a JSON parser
// cannot: unknown keys, wrong types, values dockerd rejects, and keys also
// given as flags. It is run by Apply only, never by Plan: on Docker 26
// `--validate` with "userns-remap": "default" creates the dockremap user
// and its subuid/subgid ranges, and plan must never change the host.

// minValidateMajor is the first Docker release with dockerd --validate.
const minValidateMajor = 23

// validateTimeout bounds one dockerd run; it only parses a file.
const validateTimeout = 60 * time.Second

var versionRE = regexp.MustCompile(`Docker version (\d+)\.(\d+)`)

// ParseVersion reads `dockerd --version` output ("Docker version 26.1.5,
// build a72d7cd"; distributions add suffixes like "20.10.24+dfsg1").
func ParseVersion(out string) (major, minor int, ok bool) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, false
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor, true
}

// ValidateError is dockerd's refusal of the candidate file.
type ValidateError struct {
	Path   string
	Output string
}

func (e *ValidateError) Error() string {
	return fmt.Sprintf("dockerd --validate rejected the new %s, nothing written: %s", e.Path, e.Output)
}

// validator runs dockerd; the binary is injectable so the path is tested
// with a fake beside the real one in the sandbox machine.
type validator struct {
	bin string // path or name looked up in PATH

	// Set by check: the binary found if it validates, else why not.
	path string
	skip string

	// The resident agent validates the same candidates again and again
	// (each correction of the same drift writes the same file), and two
	// dockerd runs cost ~110 ms of a drift reaction. A binary's verdict
	// depends only on the binary, the candidate and the flags, so both
	// its version and the candidates it accepted are remembered per
	// binary identity (device, inode, size, mtime): an upgrade of dockerd
	// is a new identity and is asked again.
	checked   binaryID
	checkedOK bool
	accepted  map[[sha256.Size]byte]bool
}

// binaryID identifies a dockerd binary on disk.
type binaryID struct {
	path              string
	dev, ino, size    uint64
	mtimeSec, mtimeNs int64
}

func identify(path string) (binaryID, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return binaryID{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return binaryID{}, false
	}
	return binaryID{path: path, dev: uint64(st.Dev), ino: st.Ino, size: uint64(st.Size), mtimeSec: st.Mtim.Sec, mtimeNs: st.Mtim.Nsec}, true
}

// maxAccepted bounds the remembered verdicts (a few configurations at most).
const maxAccepted = 32

func (v *validator) verdictKey(candidate []byte, args []string) [sha256.Size]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%+v\x00", v.checked)
	for _, a := range args {
		fmt.Fprintf(h, "%s\x00", a)
	}
	h.Write(candidate)
	var k [sha256.Size]byte
	copy(k[:], h.Sum(nil))
	return k
}

// check finds dockerd and its version. A missing or old dockerd is not an
// error: there is nothing to validate with. It is checked on every write,
// not once per process: `dockward run` outlives package installs and
// upgrades, and a write is rare enough for one `dockerd --version`.
func (v *validator) check(ctx context.Context) {
	p, err := exec.LookPath(v.bin)
	if err != nil {
		v.path, v.skip = "", fmt.Sprintf("%s not found", v.bin)
		return
	}
	id, ok := identify(p)
	if ok && v.checkedOK && id == v.checked {
		return // same binary as last time: same version
	}
	v.path, v.skip = "", ""
	v.checked, v.checkedOK, v.accepted = id, ok, nil
	ctx, cancel := context.WithTimeout(ctx, validateTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, p, "--version").CombinedOutput()
	if err != nil {
		v.skip = fmt.Sprintf("%s --version: %v: %s", p, err, bytes.TrimSpace(out))
		return
	}
	major, _, ok := ParseVersion(string(out))
	switch {
	case !ok:
		v.skip = fmt.Sprintf("cannot read the version in %q", strings.TrimSpace(string(out)))
	case major < minValidateMajor:
		v.skip = fmt.Sprintf("%s is older than Docker %d and has no --validate", strings.TrimSpace(string(out)), minValidateMajor)
	default:
		v.path = p
	}
}

// validate writes candidate to a temp file in dir and runs dockerd
// --validate on it with args (the unit's flags). It returns the reason
// validation was skipped, or a *ValidateError when dockerd refuses.
func (v *validator) validate(ctx context.Context, dir, path string, candidate []byte, args []string) (skipped string, err error) {
	v.check(ctx)
	if v.path == "" {
		return v.skip, nil
	}
	key := v.verdictKey(candidate, validateArgs(args))
	if v.checkedOK && v.accepted[key] {
		return "", nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("validate %s: %w", path, err)
	}
	// Named as managedfile.TempName names temp files, so that the state
	// directory's cleanup removes it when a killed run left it.
	f, err := os.CreateTemp(dir, ".candidate.json.dockward-"+strconv.Itoa(os.Getpid())+"-*.tmp")
	if err != nil {
		return "", fmt.Errorf("validate %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(candidate); err != nil {
		f.Close()
		return "", fmt.Errorf("validate %s: write %s: %w", path, tmp, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("validate %s: write %s: %w", path, tmp, err)
	}

	ctx, cancel := context.WithTimeout(ctx, validateTimeout)
	defer cancel()
	cmdArgs := append([]string{"--validate", "--config-file", tmp}, validateArgs(args)...)
	cmd := exec.CommandContext(ctx, v.path, cmdArgs...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err == nil {
		if v.checkedOK {
			if v.accepted == nil || len(v.accepted) >= maxAccepted {
				v.accepted = map[[sha256.Size]byte]bool{}
			}
			v.accepted[key] = true
		}
		return "", nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ctx.Err() != nil {
		return "", fmt.Errorf("validate %s: run %s --validate: %w", path, v.path, err)
	}
	msg := strings.TrimSpace(string(out))
	// dockerd names the temp file; name the file it stands for.
	msg = strings.ReplaceAll(msg, tmp, path+" (candidate)")
	if msg == "" {
		msg = err.Error()
	}
	return "", &ValidateError{Path: path, Output: msg}
}

func stateDir(stateDir string) string { return filepath.Join(stateDir, "docker_daemon") }
