package agent

import (
	"io"

	"github.com/sirupsen/logrus"
)

// discard is the log of an Env made outside the engine (a test, a tool):
// the engine always sets Env.Log, with the module's ID as a field.
var discard = func() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}()

// Logger is the module's log: Env.Log, or one that writes nothing when the
// Env has none. Every module uses it instead of a fallback of its own.
func (e *Env) Logger() *logrus.Entry {
	if e != nil && e.Log != nil {
		return e.Log
	}
	return discard
}
