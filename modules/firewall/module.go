package firewall

import (
	"context"
	"fmt"
	"io"
	"maps"

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
}

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
// nothing.
func (m *Module) Plan(ctx context.Context, env *agent.Env) (*agent.Plan, error) {
	if env.Offline() {
		return nil, agent.ErrOffline
	}
	bridges, missing, err := m.resolve(ctx, env)
	if err != nil {
		return nil, err
	}
	var changes []agent.Change
	for _, n := range missing {
		kind := "driver bridge"
		if n.Internal {
			kind += ", internal"
		}
		changes = append(changes, agent.Change{Action: agent.Create, Target: "docker network " + n.Name, New: kind,
			Detail: "create = true"})
		// Its bridge gets a name only when Docker creates it; the plan
		// shows the rules with this stand-in.
		bridges[n.Name] = "(new " + n.Name + ")"
	}
	want, err := m.build(bridges)
	if err != nil {
		return nil, err
	}
	have, err := m.nft.Read(m.cfg.Table)
	if err != nil {
		return nil, err
	}
	changes = append(changes, Diff(want, have)...)
	return &agent.Plan{Changes: changes, State: &planState{create: missing}}, nil
}

// Apply creates the missing networks the plan names, then replaces the
// table in one atomic batch.
func (m *Module) Apply(ctx context.Context, env *agent.Env, plan *agent.Plan) error {
	if plan.Empty() {
		return nil
	}
	log := logger(env)
	if st, ok := plan.State.(*planState); ok {
		for _, n := range st.create {
			d, err := m.dockerAPI()
			if err != nil {
				return err
			}
			if err := d.CreateNetwork(ctx, n.Name, n.Internal); err != nil {
				return err
			}
			log.WithFields(logrus.Fields{"target": "docker network " + n.Name, "internal": n.Internal}).Info("created docker network")
		}
	}
	bridges, missing, err := m.resolve(ctx, env)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("docker network %q is still missing after it was created", missing[0].Name)
	}
	want, err := m.build(bridges)
	if err != nil {
		return err
	}
	if err := m.nft.Replace(want); err != nil {
		return err
	}
	rules, elems := want.Counts()
	log.WithFields(logrus.Fields{"target": "table inet " + want.Table, "rules": rules, "elements": elems}).Info("replaced nftables table")
	return nil
}

// resolve maps every declared network to its bridge interface. Networks
// that do not exist and may be created are returned in missing; one that
// does not exist otherwise is an error naming it.
func (m *Module) resolve(ctx context.Context, env *agent.Env) (map[string]string, []*Network, error) {
	bridges := map[string]string{}
	var missing []*Network
	for _, n := range m.cfg.Networks {
		if n.Bridge != "" {
			bridges[n.Name] = n.Bridge
			continue
		}
		d, err := m.dockerAPI()
		if err != nil {
			return nil, nil, err
		}
		dn, found, err := d.Network(ctx, n.Name)
		if err != nil {
			return nil, nil, fmt.Errorf("resolve network %q (declared at %s): %w", n.Name, n.Range, err)
		}
		if !found {
			if n.Create {
				missing = append(missing, n)
				continue
			}
			return nil, nil, fmt.Errorf("docker network %q (declared at %s) does not exist; create it, or set create = true", n.Name, n.Range)
		}
		br, err := BridgeName(dn)
		if err != nil {
			return nil, nil, fmt.Errorf("resolve network %q (declared at %s): %w", n.Name, n.Range, err)
		}
		if n.Internal && !dn.Internal {
			// Docker cannot change that on an existing network; the table
			// enforces it regardless.
			logger(env).WithField("target", "docker network "+n.Name).
				Warn("network is declared internal but Docker's network is not; the firewall enforces internal anyway")
		}
		bridges[n.Name] = br
	}
	return bridges, missing, nil
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

func logger(env *agent.Env) *logrus.Entry {
	if env != nil && env.Log != nil {
		return env.Log.WithField("module", "firewall")
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}
