package main

import (
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// dockwardBin is the binary under test: $DOCKWARD_BIN (make test passes
// bin/dockward), or one built from this package once per test process.
func dockwardBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if p := os.Getenv("DOCKWARD_BIN"); p != "" {
			binPath, binErr = filepath.Abs(p)
			return
		}
		if binDir, binErr = os.MkdirTemp("", "dockward-cli-test-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "dockward")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// runBin runs the built binary: the exit status is the process's, as a
// shell or systemd sees it.
func runBin(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(dockwardBin(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("dockward %v: %v", args, err)
	return 0, "", ""
}

func TestTopLevelHelpExitsZeroOnStdout(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"-help"}} {
		code, stdout, stderr := runBin(t, args...)
		if code != 0 || stdout != usageText() || stderr != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout:\n%s", args, code, stderr, stdout)
		}
	}
	// No command at all is a usage error: the usage goes to stderr.
	if code, stdout, stderr := runBin(t); code != 1 || stdout != "" || stderr != usageText() {
		t.Errorf("no arguments: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
}

// The usage lists every command once, under its group, groups in order and
// none empty; lines fit a terminal.
func TestUsageGroupsEveryCommand(t *testing.T) {
	u := usageText()
	for _, c := range commands {
		if !slices.Contains(groups, c.group) {
			t.Errorf("%s: group %q is not in groups", c.name, c.group)
		}
		if n := len(regexp.MustCompile(`(?m)^  `+c.name+` +`+regexp.QuoteMeta(c.summary)+`$`).FindAllString(u, -1)); n != 1 {
			t.Errorf("%s listed %d times with its summary", c.name, n)
		}
	}
	last := -1
	for _, g := range groups {
		i := strings.Index(u, "\n"+g+":\n")
		if i < last {
			t.Errorf("group %q missing or out of order", g)
		}
		last = i
		if !slices.ContainsFunc(commands, func(c *command) bool { return c.group == g }) {
			t.Errorf("group %q has no command", g)
		}
	}
	for _, line := range strings.Split(u, "\n") {
		if n := len([]rune(line)); n > helpWidth {
			t.Errorf("usage line of %d columns: %q", n, line)
		}
	}
}

// Every command has help, the same three ways, naming its flags, its exit
// codes and an example; and the example is a valid command line.
func TestHelpForEveryCommand(t *testing.T) {
	for _, c := range commands {
		want := commandHelp(c)
		for _, args := range [][]string{{"help", c.name}, {c.name, "--help"}, {c.name, "-h"}} {
			code, stdout, stderr := runBin(t, args...)
			if code != 0 || stderr != "" || stdout != want {
				t.Errorf("%v: exit %d, stderr %q, stdout:\n%s", args, code, stderr, stdout)
			}
		}
		for _, part := range []string{"Usage: " + synopsis(c) + "\n", "\nExit codes:\n", "\nExample:\n  dockward " + c.name} {
			if !strings.Contains(want, part) {
				t.Errorf("help %s lacks %q", c.name, part)
			}
		}
		for _, f := range flagsOf(c) {
			if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(f.dashed()+" "+flagMeta(f)) + ` `).MatchString(want) {
				t.Errorf("help %s does not describe %s", c.name, f.dashed())
			}
		}
		for _, e := range c.exits {
			if !strings.Contains(want, "\n  "+strconv.Itoa(e.code)+"  "+e.meaning+"\n") {
				t.Errorf("help %s lacks exit code %d", c.name, e.code)
			}
		}
		if !slices.ContainsFunc(c.exits, func(e exitCode) bool { return e.code == 1 }) {
			t.Errorf("%s: exit code 1 (usage error) is not documented", c.name)
		}
		// The example parses: its command exists and takes those flags.
		args := strings.Fields(c.example)
		if i := slices.IndexFunc(args, func(a string) bool { return a == ">" || a == "|" }); i >= 0 {
			args = args[:i]
		}
		var out, errb bytes.Buffer
		if got, _, code, ok := parseArgs(&globals{}, args[1:], &out, &errb); !ok || got != c {
			t.Errorf("example %q does not parse: exit %d %s", c.example, code, errb.String())
		}
		for _, line := range strings.Split(want, "\n") {
			if n := len([]rune(line)); n > helpWidth {
				t.Errorf("help %s: line of %d columns: %q", c.name, n, line)
			}
		}
	}
}

func TestUsageErrorsHaveAHint(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"pln"}, []string{`unknown command "pln"; did you mean "plan"?`, "'dockward help'"}},
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`, "'dockward help'"}},
		{[]string{"plan", "--bogus"}, []string{"flag provided but not defined: -bogus", "'dockward help plan'"}},
		{[]string{"--bogus", "plan"}, []string{"flag provided but not defined: -bogus", "'dockward help'"}},
		{[]string{"init", "-c", "x.hcl"}, []string{"flag provided but not defined: -c", "'dockward help init'"}},
		{[]string{"run", "--format", "json"}, []string{"flag provided but not defined: -format", "'dockward help run'"}},
		{[]string{"plan", "extra"}, []string{`unexpected argument "extra"`, "'dockward help plan'"}},
		{[]string{"help", "aply"}, []string{`unknown command "aply"; did you mean "apply"?`}},
		{[]string{"help", "plan", "apply"}, []string{"one command at a time"}},
		{[]string{"completion"}, []string{"bash or zsh", "'dockward help completion'"}},
		{[]string{"completion", "fish"}, []string{"bash or zsh"}},
		{[]string{"version", "--format", "yaml"}, []string{"--format must be text or json"}},
	} {
		code, stdout, stderr := runBin(t, tc.args...)
		if code != 1 || stdout != "" {
			t.Errorf("%v: exit %d, want 1; stdout %q", tc.args, code, stdout)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, w, stderr)
			}
		}
	}
}

// TestDispatchMatchesTheTable keeps main.go's switch and the command table
// in step: every command the table lists is run, and every command run is
// listed (and so has help and completion).
func TestDispatchMatchesTheTable(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var dispatched []string
	ast.Inspect(f, func(n ast.Node) bool {
		sw, ok := n.(*ast.SwitchStmt)
		if !ok {
			return true
		}
		if id, ok := sw.Tag.(*ast.Ident); !ok || id.Name != "cmdName" {
			return true
		}
		for _, s := range sw.Body.List {
			for _, e := range s.(*ast.CaseClause).List {
				if lit, ok := e.(*ast.BasicLit); ok {
					name, _ := strconv.Unquote(lit.Value)
					dispatched = append(dispatched, name)
				}
			}
		}
		return false
	})
	slices.Sort(dispatched)
	listed := commandNames()
	slices.Sort(listed)
	if diff := cmp.Diff(listed, dispatched); diff != "" {
		t.Errorf("commands.go's table (-) and main.go's switch on cmdName (+) differ:\n%s", diff)
	}
}

// TestReadmeCommandLineIsTheUsage keeps README.md's "Command line" block the
// usage dockward prints.
func TestReadmeCommandLineIsTheUsage(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## Command line\n")
	if !ok {
		t.Fatal("README.md has no Command line section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	_, block, ok := strings.Cut(sec, "```\n")
	if !ok {
		t.Fatal("README.md's Command line section has no ``` block")
	}
	block, _, _ = strings.Cut(block, "```\n")
	if diff := cmp.Diff(usageText(), block); diff != "" {
		t.Errorf("README.md's Command line block (+) is not `dockward help` (-); paste the output of `dockward help`:\n%s", diff)
	}
}
