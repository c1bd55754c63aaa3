package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Journal is the durable "restart owed" record, the engine's alone: it
// writes an entry before it applies a change that a unit restarts on, and
// clears it only after the unit's Restarter reported a verified restart. A
// crash between the write and the restart therefore still ends in a restart
// on the next run. Modules never see it; they get Env.Due.
type Journal struct {
	path string
	mu   sync.Mutex
}

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
func NewJournal(stateDir string) *Journal {
	return &Journal{path: filepath.Join(stateDir, "restart-owed.json")}
}

func (j *Journal) load() (map[string]*Owed, error) {
	b, err := os.ReadFile(j.path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*Owed{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read restart journal: %w", err)
	}
	m := map[string]*Owed{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read restart journal %s: %w", j.path, err)
	}
	return m, nil
}

func (j *Journal) store(m map[string]*Owed) error {
	if len(m) == 0 {
		err := os.Remove(j.path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("clear restart journal: %w", err)
		}
		return SyncDir(filepath.Dir(j.path))
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
		return fmt.Errorf("restart journal: %w", err)
	}
	return WriteFileAtomic(j.path, append(b, '\n'), 0o600)
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
