package firewall

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/dockward/dockward/agent"
	"github.com/sirupsen/logrus"
)

// Module is the firewall module.
type Module struct {
	cfg       *Block
	nft       Tables
	newDocker func() (Docker, error)
	docker    Docker

	// The last table built and the bridges it was built for: Build is pure,
	// and a resident agent plans the same table again and again.
	builtFor map[string]string
	built    *Ruleset

	// last is the last resolution Docker answered, for runs while this
	// process restarts docker (see resolve).
	last *resolution
}

// dockerUnit is the unit that serves the Engine API the module asks.
const dockerUnit = "docker.service"

// New returns the module for a decoded block, working on the caller's own
// network namespace and the Docker Engine API of DOCKER_HOST (or the local
// socket).
func New(b *Block) *Module { return NewWith(b, NewNFT(), nil) }

// Tables is the kernel side as the module sees it; *NFT is the real one.
type Tables interface {
	// Read returns the live table, nil when it does not exist.
	Read(table string) (*Ruleset, error)
	// Replace makes the live table exactly rs, atomically.
	Replace(rs *Ruleset) error
}

// NewWith returns the module with the given kernel side and Docker API
// (nil: connect to the real one when first needed, and only if a network
// must be looked up).
func NewWith(b *Block, nft Tables, docker Docker) *Module {
	return &Module{cfg: b, nft: nft, docker: docker, newDocker: NewDocker}
}

// ID implements agent.Module.
func (m *Module) ID() string { return "firewall" }

// planState is what Apply takes from Plan: the networks to create first.
// The table itself is rebuilt in Apply from freshly resolved bridges: a
// network created (or re-created by someone) since Plan has a new bridge.
type planState struct {
	create []*Network
}

// Plan resolves the declared networks to their bridges, builds the desired
// table, reads the live one and returns the differences. It changes
// nothing. A declared network that Docker does not have and that is not
// create = true is pending: the table is built without it (the other
// networks' rules do not wait for it), and the plan lists it.
func (m *Module) Plan(ctx context.Context, env *agent.Env) (*agent.Plan, error) {
	if env.Offline() {
		return nil, agent.ErrOffline
	}
	r, err := m.resolve(ctx, env)
	if err != nil {
		return nil, err
	}
	var changes []agent.Change
	for _, n := range r.create {
		kind := "driver bridge"
		if n.Internal {
			kind += ", internal"
		}
		changes = append(changes, agent.Change{Action: agent.Create, Target: "docker network " + n.Name, New: kind,
			Detail: "create = true"})
		// Its bridge gets a name only when Docker creates it; the plan
		// shows the rules with this stand-in.
		r.bridges[n.Name] = "(new " + n.Name + ")"
	}
	want, err := m.build(r.bridges)
	if err != nil {
		return nil, err
	}
	have, err := m.nft.Read(m.cfg.Table)
	if err != nil {
		return nil, err
	}
	changes = append(changes, Diff(want, have)...)
	for _, n := range r.absent {
		// Warn, not fail: compose creates its networks when the project
		// comes up, maybe long after the host was provisioned.
		env.Logger().WithField("target", "docker network "+n.Name).
			Warnf("docker network %q (declared at %s) does not exist; create it, or set create = true. Until it exists it has no rules; the other networks' rules are in force, and its own go in when Docker creates it", n.Name, n.Range)
	}
	return &agent.Plan{Changes: changes, State: &planState{create: r.create}, Pending: pendingOf(r.absent)}, nil
}

// Apply creates the missing networks the plan names, then replaces the
// table in one atomic batch. A network that could not be created does not
// keep the others' rules out: the table is replaced without it, and Apply
// returns the error afterwards.
func (m *Module) Apply(ctx context.Context, env *agent.Env, plan *agent.Plan) error {
	if plan.Empty() {
		return nil
	}
	log := env.Logger()
	var errs []error
	created := map[*Network]bool{}
	if st, ok := plan.State.(*planState); ok {
		for _, n := range st.create {
			if err := m.createNetwork(ctx, n); err != nil {
				log.WithError(err).WithField("target", "docker network "+n.Name).
					Error("could not create docker network; applying the other networks' rules without it")
				errs = append(errs, err)
				continue
			}
			created[n] = true
			log.WithFields(logrus.Fields{"target": "docker network " + n.Name, "internal": n.Internal}).Info("created docker network")
		}
	}
	r, err := m.resolve(ctx, env)
	if err != nil {
		return err
	}
	for _, n := range r.create {
		// Its creation failed (an error above), or it vanished right
		// after: it gets no rules this time, and the next run creates it.
		if created[n] {
			errs = append(errs, fmt.Errorf("docker network %q is still missing after it was created", n.Name))
		}
		r.absent = append(r.absent, n)
	}
	plan.Pending = pendingOf(r.absent)
	want, err := m.build(r.bridges)
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		// The plan's table had the network that could not be created; what
		// is live may already be the table without it (a retry). Writing
		// it again would change nothing but set off the nftables monitor,
		// and so another failing run.
		have, err := m.nft.Read(m.cfg.Table)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		if len(Diff(want, have)) == 0 {
			return errors.Join(errs...)
		}
	}
	if err := m.nft.Replace(want); err != nil {
		return errors.Join(append(errs, err)...)
	}
	rules, elems := want.Counts()
	log.WithFields(logrus.Fields{"target": "table inet " + want.Table, "rules": rules, "elements": elems}).Info("replaced nftables table")
	return errors.Join(errs...)
}

func (m *Module) createNetwork(ctx context.Context, n *Network) error {
	d, err := m.dockerAPI()
	if err != nil {
		return err
	}
	return d.CreateNetwork(ctx, n.Name, n.Internal)
}

// resolution is what resolve found: the bridge of every declared network
// (Build's input), and the networks Docker does not have.
type resolution struct {
	// bridges maps every declared network to its bridge interface; ""
	// for one Docker does not have (Build gives it no rules).
	bridges map[string]string
	// create are the missing networks with create = true.
	create []*Network
	// absent are the missing networks without create = true: pending
	// until someone (compose, an operator) creates them.
	absent []*Network
}

// resolve maps every declared network to its bridge interface. A network
// with a declared bridge is not looked up: its rules match the interface by
// name, so they are in force before the bridge exists and from the moment
// it does. A network Docker does not have is not an error; anything else
// (Docker unreachable, a network that is not a bridge) is, naming it.
//
// While this process restarts docker and waits for it to come back, Docker
// is not asked: the request would wait for dockerd's start (docker.socket
// holds it), and the firewall would be as blind as before the run loop's
// side lane. The last answer stands in: a network keeps its ID, so its
// bridge, across a restart, and nobody can create or remove one while
// dockerd is down. The run after the restart asks again (Docker's network
// events come back with dockerd).
func (m *Module) resolve(ctx context.Context, env *agent.Env) (*resolution, error) {
	if m.last != nil && env.Restarting(dockerUnit) {
		env.Logger().Debugf("%s is restarting: using the networks Docker reported last", dockerUnit)
		return m.last.clone(), nil
	}
	r, err := m.ask(ctx, env)
	if err == nil {
		m.last = r.clone()
	}
	return r, err
}

func (r *resolution) clone() *resolution {
	return &resolution{bridges: maps.Clone(r.bridges), create: slices.Clone(r.create), absent: slices.Clone(r.absent)}
}

// ask resolves the networks with Docker.
func (m *Module) ask(ctx context.Context, env *agent.Env) (*resolution, error) {
	r := &resolution{bridges: map[string]string{}}
	for _, n := range m.cfg.Networks {
		if n.Bridge != "" {
			r.bridges[n.Name] = n.Bridge
			continue
		}
		d, err := m.dockerAPI()
		if err != nil {
			return nil, err
		}
		dn, found, err := d.Network(ctx, n.Name)
		if err != nil {
			return nil, fmt.Errorf("resolve network %q (declared at %s): %w", n.Name, n.Range, err)
		}
		if !found {
			r.bridges[n.Name] = ""
			if n.Create {
				r.create = append(r.create, n)
				continue
			}
			r.absent = append(r.absent, n)
			continue
		}
		br, err := BridgeName(dn)
		if err != nil {
			return nil, fmt.Errorf("resolve network %q (declared at %s): %w", n.Name, n.Range, err)
		}
		if n.Internal && !dn.Internal {
			// Docker cannot change that on an existing network; the table
			// enforces it regardless.
			env.Logger().WithField("target", "docker network "+n.Name).
				Warn("network is declared internal but Docker's network is not; the firewall enforces internal anyway")
		}
		r.bridges[n.Name] = br
	}
	return r, nil
}

// pendingOf reports networks Docker does not have as the plan's pending
// items.
func pendingOf(absent []*Network) []agent.Pending {
	var out []agent.Pending
	for _, n := range absent {
		detail := fmt.Sprintf("declared at %s; does not exist in Docker yet, so it has no rules; they go in when it is created (dockward run: on Docker's network event)", n.Range)
		if n.Create {
			detail = fmt.Sprintf("declared at %s with create = true; creating it failed, so it has no rules; the next run tries again", n.Range)
		}
		out = append(out, agent.Pending{Target: "docker network " + n.Name, Detail: detail})
	}
	return out
}

func (m *Module) build(bridges map[string]string) (*Ruleset, error) {
	if m.built != nil && maps.Equal(bridges, m.builtFor) {
		return m.built, nil
	}
	rs, err := Build(m.cfg, bridges)
	if err != nil {
		return nil, fmt.Errorf("build table inet %s: %w", m.cfg.Table, err)
	}
	m.built, m.builtFor = rs, bridges
	return rs, nil
}

func (m *Module) dockerAPI() (Docker, error) {
	if m.docker == nil {
		d, err := m.newDocker()
		if err != nil {
			return nil, err
		}
		m.docker = d
	}
	return m.docker, nil
}
