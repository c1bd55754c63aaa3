package config

import (
	"errors"
	"fmt"
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
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	return &Source{Filename: path, Bytes: b}, nil
}
