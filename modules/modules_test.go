package modules

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockward/dockward/config"
)

// The registry is one list; these are the mistakes it can still hold.

func TestRegistryHasNoDuplicates(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range Registry {
		if seen[d.Kind.Type] {
			t.Errorf("kind %q is in the registry twice", d.Kind.Type)
		}
		seen[d.Kind.Type] = true
		if d.Kind.Type == "" || d.Kind.Decode == nil || d.New == nil {
			t.Errorf("registry entry %q lacks a type, a decoder or a constructor", d.Kind.Type)
		}
		if strings.Contains(d.Kind.Type, ".") {
			t.Errorf("kind %q: a type holds no dot (module IDs are type.label)", d.Kind.Type)
		}
	}
}

// Every module package (a directory under modules/ that declares a Kind)
// is in the registry: a package written but not registered would decode
// nothing and run nothing.
func TestEveryModulePackageIsRegistered(t *testing.T) {
	registered := map[string]bool{}
	for _, d := range Registry {
		registered[d.Kind.Type] = true
	}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() || e.Name() == "internal" || e.Name() == "testdata" {
			continue
		}
		typ, ok := declaredKind(t, e.Name())
		if !ok {
			t.Errorf("modules/%s declares no `var Kind = config.Kind{Type: ...}`: every module package has one", e.Name())
			continue
		}
		n++
		if !registered[typ] {
			t.Errorf("modules/%s declares kind %q, which is not in the registry (modules.go)", e.Name(), typ)
		}
	}
	if n != len(Registry) {
		t.Errorf("%d module packages, %d registry entries", n, len(Registry))
	}
}

// declaredKind finds `var Kind = config.Kind{Type: "..."}` in a package's
// non-test files.
func declaredKind(t *testing.T, dir string) (string, bool) {
	t.Helper()
	fset := token.NewFileSet()
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if id.Name != "Kind" || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.CompositeLit)
					if !ok {
						continue
					}
					for _, el := range lit.Elts {
						kv, ok := el.(*ast.KeyValueExpr)
						if !ok {
							continue
						}
						if k, _ := kv.Key.(*ast.Ident); k != nil && k.Name == "Type" {
							if bl, ok := kv.Value.(*ast.BasicLit); ok {
								return strings.Trim(bl.Value, `"`), true
							}
						}
					}
				}
			}
		}
	}
	return "", false
}

// Every block makes its module, with the block's ID, in registry order
// whatever the order the blocks are written in.
func TestEveryBlockMakesItsModule(t *testing.T) {
	f, diags := config.Load(config.DefaultFilename, config.Default, Kinds)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	// Written in reverse: the run order is the registry's.
	for i, j := 0, len(f.Blocks)-1; i < j; i, j = i+1, j-1 {
		f.Blocks[i], f.Blocks[j] = f.Blocks[j], f.Blocks[i]
	}
	mods := Build(f)
	if len(mods) != len(f.Blocks) {
		t.Fatalf("%d blocks made %d modules", len(f.Blocks), len(mods))
	}
	pos := map[string]int{}
	for i, d := range Registry {
		pos[d.Kind.Type] = i
	}
	last := -1
	ids := map[string]bool{}
	for _, m := range mods {
		ids[m.ID()] = true
		p, ok := pos[kindOf(m.ID())]
		if !ok {
			t.Fatalf("module %s has no kind in the registry", m.ID())
		}
		if p < last {
			t.Errorf("module %s runs out of registry order", m.ID())
		}
		last = p
	}
	for _, b := range f.Blocks {
		if !ids[b.ID()] {
			t.Errorf("block %s made no module", b.ID())
		}
	}
}

// A block of a kind the registry lacks is a programming error: Build says
// so instead of skipping it.
func TestBlockWithoutModulePanics(t *testing.T) {
	f, diags := config.Load(config.DefaultFilename, config.Default, Kinds)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "has no module in the registry") {
			t.Errorf("recovered %v, want a panic naming the block without a module", r)
		}
	}()
	build(Registry[1:], f)
}
