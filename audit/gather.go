package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dockward/dockward/config"
	"github.com/dockward/dockward/modules/subid"
	"github.com/moby/moby/client"
)

// Options say what to look at.
type Options struct {
	// Root is --root: only the file checks run under it.
	Root string
	// RemapUser is the user whose subordinate ranges must exist ("" skips).
	RemapUser string
	// Timeout bounds the Engine API calls.
	Timeout time.Duration
}

// DefaultRemapUser is the user userns-remap = "default" means, checked when
// there is no configuration to read.
const DefaultRemapUser = "dockremap"

// RemapUser is the remap user a configuration declares: the label of its
// (last) subordinate_ids block, or DefaultRemapUser when it has none.
func RemapUser(cfg *config.File) string {
	user := DefaultRemapUser
	for _, b := range cfg.Blocks {
		if sb, ok := b.(*subid.Block); ok {
			user = sb.User
		}
	}
	return user
}

// Run gathers the host's state and checks it. It changes nothing.
func Run(ctx context.Context, opt Options) *Report {
	var fs []Finding
	if opt.RemapUser != "" {
		fs = append(fs, checkSubIDs(opt.Root, opt.RemapUser)...)
	}
	if opt.Root != "" {
		return newReport(fs)
	}
	if opt.Timeout == 0 {
		opt.Timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	c, err := client.New(client.FromEnv)
	if err != nil {
		return newReport(append(fs, finding("engine-reachable", "dockerd", false, err.Error())))
	}
	defer c.Close()
	info, err := c.Info(ctx, client.InfoOptions{})
	if err != nil {
		return newReport(append(fs, finding("engine-reachable", "dockerd", false, err.Error())))
	}
	fs = append(fs, CheckDaemon(info.Info)...)
	list, err := c.ContainerList(ctx, client.ContainerListOptions{})
	if err != nil {
		return newReport(append(fs, finding("list-containers", "dockerd", false, err.Error())))
	}
	for _, s := range list.Items {
		res, err := c.ContainerInspect(ctx, s.ID, client.ContainerInspectOptions{})
		if err != nil {
			fs = append(fs, finding("inspect", s.ID[:min(12, len(s.ID))], false, err.Error()))
			continue
		}
		fs = append(fs, CheckContainer(res.Container)...)
	}
	return newReport(fs)
}

// checkSubIDs checks that user has a range in both files.
func checkSubIDs(root, user string) []Finding {
	var fs []Finding
	for _, name := range []string{"/etc/subuid", "/etc/subgid"} {
		path := filepath.Join(root, name)
		data, err := os.ReadFile(path)
		if err != nil {
			fs = append(fs, finding("subordinate-ids", path, false, err.Error()))
			continue
		}
		f, err := subid.Parse(path, data)
		if err != nil {
			fs = append(fs, finding("subordinate-ids", path, false, err.Error()))
			continue
		}
		var total uint64
		for _, l := range f.Lines {
			if l.Kind == subid.Entry && l.Owner == user {
				total += l.Range.Count
			}
		}
		fs = append(fs, finding("subordinate-ids", path, total >= 65536,
			fmt.Sprintf("%s has %d subordinate IDs (65536 needed for userns-remap)", user, total)))
	}
	return fs
}
