package migrate

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/container"
)

func TestOwnChanges(t *testing.T) {
	mounts := []container.MountPoint{{Destination: "/data"}, {Destination: "/srv/app/cache/"}}
	ch := func(k container.ChangeType, p string) container.FilesystemChange {
		return container.FilesystemChange{Kind: k, Path: p}
	}
	tests := []struct {
		name string
		in   []container.FilesystemChange
		want []string
	}{
		{"nothing", nil, nil},
		{"mount points and their parents are Docker's", []container.FilesystemChange{
			ch(container.ChangeAdd, "/data"), ch(container.ChangeModify, "/srv"), ch(container.ChangeAdd, "/srv/app"), ch(container.ChangeAdd, "/srv/app/cache"),
		}, nil},
		{"files beside them are the container's", []container.FilesystemChange{
			ch(container.ChangeAdd, "/data"), ch(container.ChangeModify, "/etc"), ch(container.ChangeAdd, "/etc/motd"), ch(container.ChangeAdd, "/srv/app/log"),
		}, []string{"C /etc", "A /etc/motd", "A /srv/app/log"}},
		{"a deleted parent of a mount point is a change", []container.FilesystemChange{ch(container.ChangeDelete, "/srv")}, []string{"D /srv"}},
		{"the root itself is no mount point parent", []container.FilesystemChange{ch(container.ChangeModify, "/")}, []string{"C /"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n := summarizeChanges(ownChanges(tt.in, mounts))
			if diff := cmp.Diff(tt.want, got); diff != "" || n != len(tt.want) {
				t.Errorf("own changes (-want +got), count %d:\n%s", n, diff)
			}
		})
	}
}

func TestSummarizeChangesCaps(t *testing.T) {
	var in []container.FilesystemChange
	for i := range 25 {
		in = append(in, container.FilesystemChange{Kind: container.ChangeAdd, Path: fmt.Sprintf("/f%d", i)})
	}
	got, n := summarizeChanges(in)
	if len(got) != MaxChanges || n != 25 || got[0] != "A /f0" {
		t.Errorf("summarizeChanges of 25: %d kept (%v), count %d; want %d kept, 25", len(got), got, n, MaxChanges)
	}
}
