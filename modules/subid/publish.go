package subid

import (
	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/agent/managedfile"
)

// publish tells later modules of the run (docker_daemon, which works out
// dockerd's data root from the remap user's first range) the user's ranges
// as this plan leaves them. It reads what Plan just computed: the new file
// content where a file changes, the current one where it does not.
func (m *Module) publish(env *agent.Env, st *state, changed bool) {
	if env.Facts == nil || st == nil {
		return
	}
	root, err := managedfile.Open(env.Root)
	if err != nil {
		return
	}
	defer root.Close()
	passwd, err := readInput(root, passwdPath)
	if err != nil {
		return // compute read it a moment ago; nothing to publish without it
	}
	uid, _ := lookupUID(passwd, m.want.User)
	owner := Owner{Name: m.want.User, UID: uid}
	out := agent.SubordinateIDs{User: m.want.User, Module: m.ID(), Changed: changed}
	for i, fl := range st.files {
		data := fl.data
		if fl.out != nil {
			data = fl.out
		}
		f, err := Parse(fl.path, data)
		if err != nil {
			return
		}
		var rs []agent.IDRange
		for _, ln := range f.Lines {
			if ln.Kind == Entry && owner.Is(ln.Owner) {
				rs = append(rs, agent.IDRange{Start: ln.Range.Start, Count: ln.Range.Count})
			}
		}
		if i == 0 {
			out.UID = rs
		} else {
			out.GID = rs
		}
	}
	env.Facts.PublishSubordinateIDs(out)
}
