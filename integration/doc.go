// Package integration holds dockward's acceptance tests on a real host: the
// scenarios of integration/scenarios run in booted sandbox machines
// (integration/sandbox), the same scripts the Ubuntu 24.04 Vagrant VM runs.
// The tests need root and skip without it.
package integration
