package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Source is the configuration text a run uses and where it came from.
type Source struct {
	Filename string // path, or DefaultFilename for the embedded default
	Bytes    []byte
	Embedded bool
}

// Read finds the configuration: the -c path when given (it must exist);
// otherwise DefaultPath (under root when root is set, the configuration
// of the image being prepared), falling back to the embedded default when
// that does not exist. A file found is refused unless only root can write it.
func Read(path, root string) (*Source, error) {
	explicit := path != ""
	if !explicit {
		path = DefaultPath
		if root != "" {
			path = filepath.Join(root, DefaultPath)
		}
	}
	if err := CheckOwnership(path); err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return &Source{Filename: DefaultFilename, Bytes: Default, Embedded: true}, nil
		}
		return nil, fmt.Errorf("configuration: %w", err)
	}
	b, err := readCapped(path)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	return &Source{Filename: path, Bytes: b}, nil
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
