package fakesystemd

import (
	"context"
	"sync"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Direct is an in-memory connection to the fake with the method set of
// go-systemd's *dbus.Conn that the service module uses (its Bus interface):
// no D-Bus, no goroutines besides the jobs', so tests and benchmarks see the
// module's own work.
type Direct struct {
	s *Systemd

	mu     sync.Mutex
	closed bool
}

// Direct returns a new in-memory connection.
func (s *Systemd) Direct() *Direct { return &Direct{s: s} }

// Close closes the connection; later calls fail with dbus.ErrClosed.
func (d *Direct) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
}

// Connected reports whether Close has not been called.
func (d *Direct) Connected() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.closed
}

func (d *Direct) check(ctx context.Context) error {
	if !d.Connected() {
		return dbus.ErrClosed
	}
	return ctx.Err()
}

// dbusErr turns a nil *dbus.Error into a nil error, and a non-nil one into the
// value type godbus's client returns.
func dbusErr(e *dbus.Error) error {
	if e == nil {
		return nil
	}
	return *e
}

func (d *Direct) GetUnitPropertiesContext(ctx context.Context, unit string) (map[string]any, error) {
	return d.GetUnitTypePropertiesContext(ctx, unit, "Unit")
}

func (d *Direct) GetUnitTypePropertiesContext(ctx context.Context, unit, unitType string) (map[string]any, error) {
	if err := d.check(ctx); err != nil {
		return nil, err
	}
	p := d.s.Properties(unit, "org.freedesktop.systemd1."+unitType)
	// Over D-Bus a struct arrives as []any.
	if j, ok := p["Job"].(JobRef); ok {
		p["Job"] = []any{j.ID, j.Path}
	}
	return p, nil
}

func (d *Direct) job(ctx context.Context, kind, name string, ch chan<- string) (int, error) {
	if err := d.check(ctx); err != nil {
		return 0, err
	}
	var done func(string)
	if ch != nil {
		done = func(r string) { ch <- r }
	}
	id, e := d.s.Job(kind, name, done)
	return int(id), dbusErr(e)
}

func (d *Direct) StartUnitContext(ctx context.Context, name, _ string, ch chan<- string) (int, error) {
	return d.job(ctx, "start", name, ch)
}

func (d *Direct) StopUnitContext(ctx context.Context, name, _ string, ch chan<- string) (int, error) {
	return d.job(ctx, "stop", name, ch)
}

func (d *Direct) RestartUnitContext(ctx context.Context, name, _ string, ch chan<- string) (int, error) {
	return d.job(ctx, "restart", name, ch)
}

func (d *Direct) ReloadUnitContext(ctx context.Context, name, _ string, ch chan<- string) (int, error) {
	return d.job(ctx, "reload", name, ch)
}

func (d *Direct) ResetFailedUnitContext(ctx context.Context, name string) error {
	if err := d.check(ctx); err != nil {
		return err
	}
	return dbusErr(d.s.ResetFailedUnit(name))
}

func (d *Direct) EnableUnitFilesContext(ctx context.Context, files []string, _, _ bool) (bool, []sddbus.EnableUnitFileChange, error) {
	if err := d.check(ctx); err != nil {
		return false, nil, err
	}
	cs, e := d.s.EnableUnitFiles(files, true)
	var out []sddbus.EnableUnitFileChange
	for _, c := range cs {
		out = append(out, sddbus.EnableUnitFileChange(c))
	}
	return true, out, dbusErr(e)
}

func (d *Direct) DisableUnitFilesContext(ctx context.Context, files []string, _ bool) ([]sddbus.DisableUnitFileChange, error) {
	if err := d.check(ctx); err != nil {
		return nil, err
	}
	cs, e := d.s.EnableUnitFiles(files, false)
	var out []sddbus.DisableUnitFileChange
	for _, c := range cs {
		out = append(out, sddbus.DisableUnitFileChange(c))
	}
	return out, dbusErr(e)
}

func (d *Direct) ReloadContext(ctx context.Context) error {
	if err := d.check(ctx); err != nil {
		return err
	}
	return dbusErr(d.s.Reload())
}
