package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Source is the configuration text a run uses and where it came from: the
// main file (or the embedded default) and the drop-ins of its conf.d
// directory, in the order they merge.
type Source struct {
	Filename string // path, or DefaultFilename for the embedded default
	Bytes    []byte
	Embedded bool
	// DropIns are the conf.d files, in lexical order of their names.
	DropIns []Part
	// DropInDir is the conf.d directory looked in (it need not exist).
	DropInDir string
}

// Part is one configuration file's name and text.
type Part struct {
	Filename string
	Bytes    []byte
}

// Parts lists the main file and the drop-ins, in merge order.
func (s *Source) Parts() []Part {
	return append([]Part{{Filename: s.Filename, Bytes: s.Bytes}}, s.DropIns...)
}

// MaxDropIns bounds how many conf.d files are read: a fleet lays down a
// handful; thousands are a mistake, not a configuration.
const MaxDropIns = 256

// DropInDir is the conf.d directory beside a main configuration file.
func DropInDir(mainPath string) string {
	return filepath.Join(filepath.Dir(mainPath), "conf.d")
}

// Read finds the configuration: the -c path when given (it must exist);
// otherwise DefaultPath (under root when root is set, the configuration
// of the image being prepared), falling back to the embedded default when
// that does not exist. A file found is refused unless only root can write it.
//
// The drop-ins of the conf.d directory beside it are read too, also when
// the embedded default stands in for a missing main file: a fleet may lay
// down only per-role drop-ins on top of the defaults.
func Read(path, root string) (*Source, error) {
	explicit := path != ""
	if !explicit {
		path = DefaultPath
		if root != "" {
			path = filepath.Join(root, DefaultPath)
		}
	}
	src := &Source{DropInDir: DropInDir(path)}
	if err := CheckOwnership(path); err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			src.Filename, src.Bytes, src.Embedded = DefaultFilename, Default, true
		} else {
			return nil, fmt.Errorf("configuration: %w", err)
		}
	} else {
		b, err := readCapped(path)
		if err != nil {
			return nil, fmt.Errorf("configuration: %w", err)
		}
		src.Filename, src.Bytes = path, b
	}
	names, err := DropInFiles(src.DropInDir)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	for _, p := range names {
		if err := CheckOwnership(p); err != nil {
			return nil, fmt.Errorf("configuration: %w", err)
		}
		b, err := readCapped(p)
		if err != nil {
			return nil, fmt.Errorf("configuration: %w", err)
		}
		src.DropIns = append(src.DropIns, Part{Filename: p, Bytes: b})
	}
	return src, nil
}

// IsDropInName says whether a directory entry's name is a drop-in: a
// *.hcl name, not hidden. Packaging leftovers (x.hcl.dpkg-old) and editor
// backups (x.hcl~, .x.hcl.swp) do not end in .hcl and are not read.
func IsDropInName(name string) bool {
	return strings.HasSuffix(name, ".hcl") && !strings.HasPrefix(name, ".") && len(name) > len(".hcl")
}

// DropInFiles lists the drop-ins of dir in lexical order; none when dir
// does not exist. The directory must be one only root can write (anyone
// who can add a file there drives root actions); every drop-in must be a
// regular file (CheckOwnership says so for each).
func DropInFiles(dir string) ([]string, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", dir)
	}
	if err := checkWriters(dir, fi); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if IsDropInName(e.Name()) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out) // ReadDir sorts already; the order is the contract
	if len(out) > MaxDropIns {
		return nil, fmt.Errorf("%s: %d drop-in files, more than the %d read", dir, len(out), MaxDropIns)
	}
	return out, nil
}

// readCapped reads at most one byte more than MaxFileSize: enough for
// Decode to refuse a file too large, never the whole of a huge one.
func readCapped(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, MaxFileSize+1))
}
