package modules

import (
	"os/exec"
	"strings"
	"testing"
)

// The layers, checked on the import graph (go list -deps): the engine
// (agent) and the configuration (config) know no module; a module knows no
// other module, only the shared libraries under modules/internal; only this
// registry, the command line and audit (which reads the files modules
// write) see modules.
func TestLayers(t *testing.T) {
	const repo = "github.com/dockward/dockward/"
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "./...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	// moduleOf names the module a package belongs to ("service" for
	// modules/service/internal/fakesystemd), "" for a package that is no
	// module's.
	moduleOf := func(pkg string) string {
		rest, ok := strings.CutPrefix(pkg, repo+"modules/")
		if !ok {
			return ""
		}
		name, _, _ := strings.Cut(rest, "/")
		if name == "internal" {
			return ""
		}
		return name
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, deps := fields[0], fields[1:]
		rel := strings.TrimPrefix(pkg, repo)
		own := moduleOf(pkg)
		for _, dep := range deps {
			dm := moduleOf(dep)
			if dm == "" {
				continue
			}
			switch {
			case strings.HasPrefix(rel, "agent") || strings.HasPrefix(rel, "config"):
				t.Errorf("%s imports module %s: the engine and the configuration know modules only through the registry", rel, dm)
			case own != "" && dm != own:
				t.Errorf("module %s (%s) imports module %s: share code through modules/internal instead", own, rel, dm)
			case strings.HasPrefix(rel, "modules/internal"):
				t.Errorf("%s imports module %s: a shared library serves modules, it is not one", rel, dm)
			}
		}
		checked++
	}
	if checked < 10 {
		t.Fatalf("go list listed only %d packages:\n%s", checked, out)
	}
}
