package service

import "github.com/dockward/dockward/modules/internal/systemd"

// The module talks to systemd through the shared adapter
// (modules/internal/systemd); these names keep the package's API (Bus,
// DialSystem, the errors callers test with errors.Is) where it was.

// Bus is the part of go-systemd's *dbus.Conn the module uses.
type Bus = systemd.Bus

// DialSystem connects to systemd on the system bus (DBUS_SYSTEM_BUS_ADDRESS
// overrides where that is).
var DialSystem = systemd.DialSystem

// Errors of systemd and the bus, classified by their D-Bus error names.
var (
	ErrNoSuchUnit     = systemd.ErrNoSuchUnit
	ErrUnitMasked     = systemd.ErrUnitMasked
	ErrAccessDenied   = systemd.ErrAccessDenied
	ErrJobNotApplied  = systemd.ErrJobNotApplied
	ErrBusUnavailable = systemd.ErrBusUnavailable
	ErrTimeout        = systemd.ErrTimeout
)

type (
	unitState = systemd.UnitState
	jobKind   = systemd.JobKind
)

const (
	jobStart   = systemd.JobStart
	jobStop    = systemd.JobStop
	jobRestart = systemd.JobRestart
	jobReload  = systemd.JobReload
)

var (
	classify       = systemd.Classify
	parseUnitState = systemd.ParseUnitState
	usecTime       = systemd.UsecTime
	errJobLost     = systemd.ErrJobLost
)
