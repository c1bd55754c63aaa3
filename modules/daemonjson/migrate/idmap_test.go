package migrate

import "testing"

var remap100k = RemapRange(100000, 100000, 65536)
var remap200k = RemapRange(200000, 300000, 65536)

func TestShiftOwner(t *testing.T) {
	split := IDMap{ // two ranges, as a subuid file with two lines for the user gives
		UID: []IDRange{{0, 100000, 1000}, {1000, 500000, 64536}},
		GID: []IDRange{{0, 100000, 65536}},
	}
	tests := []struct {
		name             string
		s                Shift
		uid, gid         uint32
		wantU, wantG     uint32
		wantMapped       bool
		wantIdentityFlag bool
	}{
		{"no remap either side", Shift{}, 1000, 1000, 1000, 1000, true, true},
		{"enable: root", Shift{To: remap100k}, 0, 0, 100000, 100000, true, false},
		{"enable: uid 1000", Shift{To: remap100k}, 1000, 50, 101000, 100050, true, false},
		{"enable: last id of the range", Shift{To: remap100k}, 65535, 65535, 165535, 165535, true, false},
		{"enable: id past the range becomes nobody", Shift{To: remap100k}, 70000, 0, 100000 + 65534, 100000, false, false},
		{"disable: remapped root back to root", Shift{From: remap100k}, 100000, 100000, 0, 0, true, false},
		{"disable: 101000 back to 1000", Shift{From: remap100k}, 101000, 101000, 1000, 1000, true, false},
		{"disable: host id outside the old map is nobody", Shift{From: remap100k}, 0, 0, 65534, 65534, false, false},
		{"between ranges, uid and gid apart", Shift{From: remap100k, To: remap200k}, 100005, 100007, 200005, 300007, true, false},
		{"same map both sides", Shift{From: remap100k, To: remap100k}, 100005, 100007, 100005, 100007, true, true},
		{"two uid ranges: first", Shift{To: split}, 999, 0, 100999, 100000, true, false},
		{"two uid ranges: second", Shift{To: split}, 1000, 0, 500000, 100000, true, false},
		{"nobody without room for it stays as is", Shift{To: IDMap{UID: []IDRange{{0, 100000, 10}}, GID: []IDRange{{0, 100000, 10}}}}, 20, 5, 20, 100005, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, g, ok := tt.s.Owner(tt.uid, tt.gid)
			if u != tt.wantU || g != tt.wantG || ok != tt.wantMapped {
				t.Errorf("Owner(%d, %d) = %d, %d, %v; want %d, %d, %v", tt.uid, tt.gid, u, g, ok, tt.wantU, tt.wantG, tt.wantMapped)
			}
			if got := tt.s.Identity(); got != tt.wantIdentityFlag {
				t.Errorf("Identity() = %v, want %v", got, tt.wantIdentityFlag)
			}
		})
	}
}

func TestIDMapViews(t *testing.T) {
	tests := []struct {
		name     string
		m        IDMap
		id       uint32
		toHost   uint32
		hostOK   bool
		toCont   uint32
		contOK   bool
		remapped bool
	}{
		{"identity", IDMap{}, 42, 42, true, 42, true, false},
		{"remap, inside", remap100k, 42, 100042, true, 0, false, true},
		{"remap, host id", remap100k, 100042, 0, false, 42, true, true},
		{"remap, last host id", remap100k, 165535, 0, false, 65535, true, true},
		{"remap, one past the end", remap100k, 165536, 0, false, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, hok := tt.m.UIDToHost(tt.id)
			c, cok := tt.m.UIDToContainer(tt.id)
			if h != tt.toHost || hok != tt.hostOK || c != tt.toCont || cok != tt.contOK {
				t.Errorf("UIDToHost(%d) = %d %v, UIDToContainer = %d %v; want %d %v, %d %v", tt.id, h, hok, c, cok, tt.toHost, tt.hostOK, tt.toCont, tt.contOK)
			}
			gh, _ := tt.m.GIDToHost(tt.id)
			gc, _ := tt.m.GIDToContainer(tt.id)
			if gh != h || gc != c {
				t.Errorf("the GID views differ from the UID views of a symmetric map: %d %d", gh, gc)
			}
			if tt.m.Remapped() != tt.remapped {
				t.Errorf("Remapped() = %v", tt.m.Remapped())
			}
		})
	}
}

func TestIDMapValidate(t *testing.T) {
	tests := []struct {
		name    string
		m       IDMap
		wantErr string
	}{
		{"zero", IDMap{}, ""},
		{"one range", remap100k, ""},
		{"two disjoint", IDMap{UID: []IDRange{{0, 100000, 10}, {10, 200000, 10}}}, ""},
		{"empty range", IDMap{UID: []IDRange{{0, 100000, 0}}}, "uid range 0 is empty"},
		{"past 2^32", IDMap{GID: []IDRange{{0, 4294967295, 2}}}, "gid range 0 (0 -> 4294967295, 2 IDs) runs past 2^32"},
		{"container side overlap", IDMap{UID: []IDRange{{0, 100000, 10}, {5, 200000, 10}}}, "uid ranges 0 and 1 overlap on the container side"},
		{"host side overlap", IDMap{UID: []IDRange{{0, 100000, 10}, {10, 100005, 10}}}, "uid ranges 0 and 1 overlap on the host side"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.wantErr {
				t.Errorf("Validate() = %q, want %q", got, tt.wantErr)
			}
		})
	}
}
