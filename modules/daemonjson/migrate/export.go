package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
	"golang.org/x/sys/unix"
)

// ManifestFile is the inventory Export leaves in its directory, the input
// of Import.
const ManifestFile = "manifest.json"

// ResultFile is where Import leaves its Result, rewritten after each object.
const ResultFile = "result.json"

// Export saves what Import needs into dir, before the switch, from the old
// daemon: each image with the Engine API's image save, streamed into
// dir/images/NNN-ID.tar (never held in memory; all of its tags in one
// archive), and the inventory itself (containers' and networks' inspect
// answers included) as dir/manifest.json. It sets inv.Images[i].File.
//
// Export reads from the daemon only. An image whose archive is already in
// dir is not saved again (archives appear by rename once complete), so an
// interrupted export can be run again. The archives and configurations can
// hold secrets (environment variables): what Export makes is the
// operator's alone: dir and what is in it get modes 0700 and 0600.
func Export(ctx context.Context, e Engine, inv *Inventory, dir string, o Options) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	// MkdirAll leaves an existing directory's mode as it was.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	imgDir := filepath.Join(dir, "images")
	if err := os.MkdirAll(imgDir, 0o700); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	// Refuse before saving anything rather than fill the disk midway (the
	// archives are about as large as the images' unpacked size).
	var need int64
	for i, im := range inv.Images {
		if _, err := os.Stat(filepath.Join(dir, imageFile(i, im.ID))); err != nil {
			need += im.Size
		}
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(imgDir, &fs); err == nil {
		if free := int64(fs.Bavail) * int64(fs.Bsize); need > free {
			return fmt.Errorf("export: the images need about %d MB in %s, %d MB are free", need>>20, dir, free>>20)
		}
	}
	for i := range inv.Images {
		im := &inv.Images[i]
		im.File = imageFile(i, im.ID)
		if err := saveImage(ctx, e, *im, filepath.Join(dir, im.File), o); err != nil {
			return fmt.Errorf("export image %s: %w", im.Ref(), err)
		}
	}
	b, err := json.MarshalIndent(inv, "", "  ")
	if err != nil {
		return fmt.Errorf("export: encode the inventory: %w", err)
	}
	if err := renameio.WriteFile(filepath.Join(dir, ManifestFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("export: write %s: %w", filepath.Join(dir, ManifestFile), err)
	}
	return nil
}

// imageFile is where the i-th image's archive goes, relative to dir.
func imageFile(i int, id string) string {
	return filepath.Join("images", fmt.Sprintf("%03d-%s.tar", i, shortID(id)))
}

func saveImage(ctx context.Context, e Engine, im Image, path string, o Options) error {
	if _, err := os.Stat(path); err == nil {
		o.logf("migrate: image %s already saved in %s", im.Ref(), path)
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	refs := im.Tags
	if len(refs) == 0 {
		refs = []string{im.ID}
	}
	rc, err := e.ImageSave(ctx, refs)
	if err != nil {
		return err
	}
	defer rc.Close()
	pf, err := renameio.NewPendingFile(path, renameio.WithPermissions(0o600))
	if err != nil {
		return err
	}
	defer pf.Cleanup() //nolint:errcheck // after CloseAtomicallyReplace it does nothing
	n, err := io.Copy(pf, rc)
	if err != nil {
		return fmt.Errorf("save to %s: %w", path, err)
	}
	if err := pf.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("save to %s: %w", path, err)
	}
	o.logf("migrate: saved image %s (%d bytes) to %s", im.Ref(), n, path)
	return nil
}

// ReadManifest reads the inventory Export left in dir.
func ReadManifest(dir string) (*Inventory, error) {
	p := filepath.Join(dir, ManifestFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	inv, err := parseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return inv, nil
}

// parseManifest decodes a manifest and checks what Import relies on.
func parseManifest(b []byte) (*Inventory, error) {
	var inv Inventory
	if err := json.Unmarshal(b, &inv); err != nil {
		return nil, err
	}
	if inv.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("format_version %q, this dockward reads %q", inv.FormatVersion, FormatVersion)
	}
	seen := map[string]bool{}
	for _, im := range inv.Images {
		if im.ID == "" {
			return nil, errors.New("an image without an ID")
		}
		if im.File == "" || !filepath.IsLocal(im.File) {
			return nil, fmt.Errorf("image %s: archive %q is not a file inside the directory", im.Ref(), im.File)
		}
	}
	for _, c := range inv.Containers {
		if c.Name == "" || seen["c/"+c.Name] {
			return nil, fmt.Errorf("container name %q empty or repeated", c.Name)
		}
		seen["c/"+c.Name] = true
	}
	for _, n := range inv.Networks {
		if n.Name == "" || seen["n/"+n.Name] {
			return nil, fmt.Errorf("network name %q empty or repeated", n.Name)
		}
		seen["n/"+n.Name] = true
	}
	for _, v := range inv.Volumes {
		if v.Name == "" || seen["v/"+v.Name] {
			return nil, fmt.Errorf("volume name %q empty or repeated", v.Name)
		}
		seen["v/"+v.Name] = true
	}
	return &inv, nil
}
