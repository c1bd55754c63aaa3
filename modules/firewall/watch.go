package firewall

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// The firewall's event sources for the resident agent: the kernel's
// nftables notifications about dockward's table, and Docker's network
// events about the declared networks, so that a deleted table or rule is
// put back, and a declared network that appears gets its rules, without
// waiting for the interval.

var _ agent.EventSource = (*Module)(nil)

// Watch implements agent.EventSource: it runs the nftables monitor and,
// when a declared network is resolved through Docker, the Docker network
// event stream, until ctx ends. Only the monitor failing ends it with an
// error (the run loop starts it again); the Docker stream reconnects by
// itself, because dockerd restarts (dockward restarts it) are routine.
func (m *Module) Watch(ctx context.Context, env *agent.Env, emit func(reason string)) error {
	if env.Offline() {
		return agent.ErrOffline
	}
	log := env.Logger().WithField("module", "firewall")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if len(m.dockerNetworks()) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.watchNetworks(ctx, log, emit)
		}()
	}
	err := m.watchTable(ctx, emit)
	cancel()
	wg.Wait()
	return err
}

// dockerNetworks are the declared networks resolved through Docker (the
// others name their bridge).
func (m *Module) dockerNetworks() map[string]bool {
	names := map[string]bool{}
	for _, n := range m.cfg.Networks {
		if n.Bridge == "" {
			names[n.Name] = true
		}
	}
	return names
}

// nftables message types (linux/netfilter/nf_tables.h) the monitor names.
var nftMsgNames = map[uint16]string{
	unix.NFT_MSG_NEWTABLE: "table added", unix.NFT_MSG_DELTABLE: "table deleted",
	unix.NFT_MSG_NEWCHAIN: "chain added", unix.NFT_MSG_DELCHAIN: "chain deleted",
	unix.NFT_MSG_NEWRULE: "rule added", unix.NFT_MSG_DELRULE: "rule deleted",
	unix.NFT_MSG_NEWSET: "set added", unix.NFT_MSG_DELSET: "set deleted",
	unix.NFT_MSG_NEWSETELEM: "set elements added", unix.NFT_MSG_DELSETELEM: "set elements deleted",
	unix.NFT_MSG_NEWOBJ: "object added", unix.NFT_MSG_DELOBJ: "object deleted",
	unix.NFT_MSG_NEWFLOWTABLE: "flowtable added", unix.NFT_MSG_DELFLOWTABLE: "flowtable deleted",
}

// monitorReadBuffer is the monitor socket's receive buffer: Docker's
// iptables-nft restores send thousands of notifications at once, all of
// them for other tables. An overrun is survivable (see watchTable), but
// rarely needed.
const monitorReadBuffer = 1 << 20

// watchTable listens to the kernel's nftables notifications (the
// NFNLGRP_NFTABLES multicast group, what `nft monitor` reads) in the
// namespace the module's NFT works on, and calls emit once per
// transaction that touched `table inet <table>`: the table, its chains,
// rules, sets or set elements, added or deleted.
//
// It reads the netlink messages itself rather than through google/nftables'
// Monitor: the library decodes set element notifications without the table
// they belong to (so a deleted whitelist address could not be told from
// another table's), and it decodes every rule of every table, Docker's
// included, into expressions only for them to be thrown away. The table
// name is attribute 1 of every object message (NFTA_TABLE_NAME,
// NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE,
// NFTA_SET_ELEM_LIST_TABLE, NFTA_OBJ_TABLE, NFTA_FLOWTABLE_TABLE), and the
// family is in the nfgenmsg header: that is all the filter needs.
func (m *Module) watchTable(ctx context.Context, emit func(string)) error {
	n, ok := m.nft.(*NFT)
	if !ok {
		// A stand-in kernel (tests): there is nothing to listen to.
		<-ctx.Done()
		return nil
	}
	var cc nftables.Conn
	for _, o := range n.opts {
		o(&cc)
	}
	if cc.TestDial != nil {
		<-ctx.Done()
		return nil
	}
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: cc.NetNS})
	if err != nil {
		return fmt.Errorf("nftables monitor: open netlink socket: %w", err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		nl.Close()
	}()
	// Not fatal: the default buffer only makes overruns likelier.
	_ = nl.SetReadBuffer(monitorReadBuffer)
	if err := nl.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		return fmt.Errorf("nftables monitor: join the nftables multicast group: %w", err)
	}

	table := m.cfg.Table
	emitted := false // already reported the transaction in progress
	for {
		msgs, err := nl.Receive()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, unix.ENOBUFS) {
				// Notifications were dropped: ours may have been among them.
				emit("nftables monitor overrun: notifications lost")
				emitted = false
				continue
			}
			return fmt.Errorf("nftables monitor: %w", err)
		}
		for _, msg := range msgs {
			typ := uint16(msg.Header.Type)
			if typ>>8 != unix.NFNL_SUBSYS_NFTABLES {
				continue
			}
			typ &= 0xff
			if typ == unix.NFT_MSG_NEWGEN {
				emitted = false // the transaction is committed; the next is new
				continue
			}
			what, ok := nftMsgNames[typ]
			if !ok || emitted || len(msg.Data) < 4 || msg.Data[0] != unix.NFPROTO_INET {
				continue
			}
			if tableOf(msg.Data[4:]) != table {
				continue
			}
			emitted = true
			emit(fmt.Sprintf("nftables: table inet %s: %s", table, what))
		}
	}
}

// tableOf returns attribute 1 (the table name) of an nftables object
// message's attributes, "" when absent.
func tableOf(attrs []byte) string {
	ad, err := netlink.NewAttributeDecoder(attrs)
	if err != nil {
		return ""
	}
	for ad.Next() {
		if ad.Type() == 1 {
			return ad.String()
		}
	}
	return ""
}

// NetworkEvent is a Docker network created or destroyed.
type NetworkEvent struct {
	Name   string
	Action string // "create" or "destroy"
	// TimeNano is when Docker recorded it (its clock, nanoseconds).
	TimeNano int64
}

// networkEventer is implemented by Docker backends that stream network
// events (the Engine API's /events, filtered to networks).
type networkEventer interface {
	// NetworkEvents streams create and destroy events from since (zero:
	// from now) until ctx ends or the stream fails; the error channel gets
	// one value then.
	NetworkEvents(ctx context.Context, since time.Time) (<-chan NetworkEvent, <-chan error)
}

// NetworkEvents implements networkEventer on the Engine API.
func (d *dockerAPI) NetworkEvents(ctx context.Context, since time.Time) (<-chan NetworkEvent, <-chan error) {
	opts := client.EventsListOptions{Filters: make(client.Filters).Add("type", "network").Add("event", "create", "destroy")}
	if !since.IsZero() {
		opts.Since = fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond())
	}
	res := d.c.Events(ctx, opts)
	out := make(chan NetworkEvent)
	errs := make(chan error, 1)
	go func() {
		for {
			select {
			case msg := <-res.Messages:
				ev := NetworkEvent{Name: msg.Actor.Attributes["name"], Action: string(msg.Action), TimeNano: msg.TimeNano}
				select {
				case out <- ev:
				case <-ctx.Done():
					errs <- ctx.Err()
					return
				}
			case err := <-res.Err:
				if err == nil {
					err = errors.New("event stream closed")
				}
				errs <- fmt.Errorf("docker events: %w", err)
				return
			}
		}
	}()
	return out, errs
}

// watchNetworks follows Docker's network events and calls emit when a
// declared network is created or destroyed (its bridge, and so its rules,
// change). A stream that breaks (dockerd restarting, or not started yet) is
// re-opened with a backoff, asking Docker for the events since the last
// one seen, so that nothing that happened in between is missed and nothing
// is reported twice.
func (m *Module) watchNetworks(ctx context.Context, log *logrus.Entry, emit func(string)) {
	names := m.dockerNetworks()
	d, err := m.newDocker()
	if err != nil {
		log.WithError(err).Warn("docker network events unavailable; relying on the interval")
		return
	}
	if da, ok := d.(*dockerAPI); ok {
		defer da.c.Close()
	}
	src, ok := d.(networkEventer)
	if !ok {
		return
	}
	cursor := time.Now().UnixNano()
	backoff := agent.Backoff{Base: 250 * time.Millisecond, Max: 30 * time.Second}
	for failures := 0; ; {
		start := time.Now()
		sctx, cancel := context.WithCancel(ctx)
		evs, errs := src.NetworkEvents(sctx, time.Unix(0, cursor))
		err := func() error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case err := <-errs:
					return err
				case ev := <-evs:
					if ev.TimeNano <= cursor {
						continue // replayed: seen before the stream broke
					}
					cursor = ev.TimeNano
					if names[ev.Name] {
						emit(fmt.Sprintf("docker: network %s: %s", ev.Name, ev.Action))
					}
				}
			}
		}()
		cancel()
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 10*time.Second {
			failures = 0
		}
		failures++
		wait := backoff.Delay(failures)
		entry := log.WithError(err)
		if failures == 1 {
			entry.Debugf("docker network events: stream ended; reconnecting in %s", wait)
		} else if failures%8 == 0 {
			entry.Warnf("docker network events: still unavailable; retrying every %s", wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
