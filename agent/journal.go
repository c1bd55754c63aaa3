package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"sync"
	"time"

	"github.com/dockward/dockward/agent/managedfile"
)

// Journal is the durable "restart owed" record, the engine's alone: it
// writes an entry before it applies a change that a unit restarts on, and
// clears it only after the unit's Restarter reported a verified restart. A
// crash between the write and the restart therefore still ends in a restart
// on the next run. Modules never see it; they get Env.Due.
type Journal struct {
	root, stateDir string
	mu             sync.Mutex
}

// journalFile is the journal's name in the state directory.
const journalFile = "restart-owed.json"

// Owed is one unit's pending restart.
type Owed struct {
	Since time.Time `json:"since"`
	// Changes, per module ID, that made the restart owed.
	Changes map[string][]Change `json:"changes"`
	// Written is when the last of those changes was written (zero while
	// a write is pending or when the run died before it). A unit that
	// started after Written already reads the new files and needs no
	// restart: that is how first boot (files written before docker's
	// first start) settles its owed restart without restarting.
	Written time.Time `json:"written,omitzero"`
}

// NewJournal returns the journal kept at stateDir/restart-owed.json.
func NewJournal(stateDir string) *Journal { return NewJournalIn("", stateDir) }

// NewJournalIn is NewJournal for a state directory under --root root.
func NewJournalIn(root, stateDir string) *Journal {
	return &Journal{root: root, stateDir: stateDir}
}

// journalLimit caps the journal as read: a few changes per unit.
const journalLimit = 1 << 20

func (j *Journal) load() (map[string]*Owed, error) {
	sd, err := managedfile.OpenStateDir(j.root, j.stateDir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*Owed{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read restart journal: %w", err)
	}
	defer sd.Close()
	f, err := sd.Read(journalFile, journalLimit)
	if err != nil {
		return nil, fmt.Errorf("read restart journal: %w", err)
	}
	m := map[string]*Owed{}
	if !f.Exists {
		return m, nil
	}
	if err := json.Unmarshal(f.Data, &m); err != nil {
		return nil, fmt.Errorf("read restart journal %s: %w", f.Path, err)
	}
	return m, nil
}

func (j *Journal) store(m map[string]*Owed) error {
	sd, err := managedfile.OpenStateDir(j.root, j.stateDir, len(m) > 0)
	if len(m) == 0 && errors.Is(err, fs.ErrNotExist) {
		return nil // nothing owed, and no journal to clear
	}
	if err != nil {
		return fmt.Errorf("restart journal: %w", err)
	}
	defer sd.Close()
	if len(m) == 0 {
		if err := sd.Remove(journalFile); err != nil {
			return fmt.Errorf("clear restart journal: %w", err)
		}
		return sd.SyncDir(".")
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return sd.WriteAtomic(journalFile, append(b, '\n'), managedfile.RootOwned(0o600))
}

// Owe records that unit owes a restart because module changed.
func (j *Journal) Owe(unit, module string, changes []Change) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	m, err := j.load()
	if err != nil {
		return err
	}
	o := m[unit]
	if o == nil {
		o = &Owed{Since: time.Now().UTC(), Changes: map[string][]Change{}}
		m[unit] = o
	}
	o.Changes[module] = append(o.Changes[module], changes...)
	return j.store(m)
}

// Get returns the unit's owed restart, or nil.
func (j *Journal) Get(unit string) (*Owed, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	m, err := j.load()
	if err != nil {
		return nil, err
	}
	return m[unit], nil
}

// Clear removes the unit's entry after a verified restart.
func (j *Journal) Clear(unit string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	m, err := j.load()
	if err != nil {
		return err
	}
	if _, ok := m[unit]; !ok {
		return nil
	}
	delete(m, unit)
	return j.store(m)
}

// Modules lists the module IDs in an Owed, sorted.
func (o *Owed) Modules() []string {
	var ids []string
	for id := range o.Changes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Restore puts back a unit's entry as it was (nil removes it); used when an
// apply that recorded a restart failed without changing anything.
func (j *Journal) Restore(unit string, prev *Owed) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	m, err := j.load()
	if err != nil {
		return err
	}
	if prev == nil {
		delete(m, unit)
	} else {
		m[unit] = prev
	}
	return j.store(m)
}

// MarkWritten records that the changes owed for unit are on disk now.
func (j *Journal) MarkWritten(unit string, at time.Time) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	m, err := j.load()
	if err != nil {
		return err
	}
	o := m[unit]
	if o == nil {
		return nil
	}
	o.Written = at.UTC()
	return j.store(m)
}
