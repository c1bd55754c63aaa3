package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// completionScript is `dockward completion SHELL` from the built binary,
// in a file.
func completionScript(t *testing.T, shell string) string {
	t.Helper()
	code, out, stderr := runBin(t, "completion", shell)
	if code != 0 || stderr != "" {
		t.Fatalf("completion %s: exit %d: %s", shell, code, stderr)
	}
	p := filepath.Join(t.TempDir(), "dockward."+shell)
	writeFile(t, p, out, 0o644)
	return p
}

// TestBashCompletion sources the script in a real bash, sets COMP_WORDS and
// COMP_CWORD as readline would, calls the function `complete` registered
// for dockward, and reads COMPREPLY.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("SKIP: bash not installed; the bash completion script is not tested")
	}
	script := completionScript(t, "bash")
	dir := t.TempDir()
	writeFile(t, dir+"/dockward.hcl", "", 0o600)
	writeFile(t, dir+"/docs/x", "", 0o600)
	writeFile(t, dir+"/etc/y", "", 0o600)

	// complete returns COMPREPLY for each command line (its last word is
	// the one under the cursor), all in one bash.
	complete := func(t *testing.T, lines [][]string) [][]string {
		t.Helper()
		const prog = `source "$1" || exit 3
shift
fn=$(complete -p dockward) || exit 4
fn=${fn#*-F }; fn=${fn%% *}
while (($#)); do
	n=$1; shift
	COMP_WORDS=("${@:1:n}"); shift "$n"
	COMP_CWORD=$((n - 1))
	COMP_LINE="${COMP_WORDS[*]}"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	"$fn" dockward "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}" || exit 5
	printf '%s\n' "${COMPREPLY[@]}"
	echo '<<end>>'
done`
		args := []string{"--norc", "--noprofile", "-c", prog, "bash", script}
		for _, l := range lines {
			args = append(append(args, strconv.Itoa(len(l)+1), "dockward"), l...)
		}
		cmd := exec.Command(bash, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		replies := strings.Split(string(out), "<<end>>\n")
		if len(replies) != len(lines)+1 {
			t.Fatalf("bash completed %d lines of %d:\n%s", len(replies)-1, len(lines), out)
		}
		var all [][]string
		for _, r := range replies[:len(lines)] {
			got := strings.Fields(r)
			if len(got) == 0 {
				got = nil
			}
			slices.Sort(got)
			all = append(all, got)
		}
		return all
	}
	sorted := func(s ...string) []string {
		s = slices.Clone(s)
		slices.Sort(s)
		if len(s) == 0 {
			return nil
		}
		return s
	}

	cases := []struct {
		words []string
		want  []string
	}{
		{[]string{""}, commandNames()},
		{[]string{"p"}, []string{"plan"}},
		{[]string{"a"}, []string{"apply", "audit"}},
		{[]string{"-"}, []string{"--help", "--log-format", "--log-level", "--root"}},
		{[]string{"--log-level", ""}, []string{"debug", "error", "info", "warn"}},
		{[]string{"--log-level", "w"}, []string{"warn"}},
		{[]string{"plan", "--format", ""}, []string{"json", "text"}},
		{[]string{"plan", "--format", "j"}, []string{"json"}},
		{[]string{"plan", "-format", "t"}, []string{"text"}},
		// bash splits --format=json at "=" (COMP_WORDBREAKS)...
		{[]string{"plan", "--format", "=", ""}, []string{"json", "text"}},
		{[]string{"plan", "--format", "=", "j"}, []string{"json"}},
		// ...or, without "=" in COMP_WORDBREAKS, keeps it one word.
		{[]string{"plan", "--format=j"}, []string{"--format=json"}},
		{[]string{"-c", "d"}, []string{"docs", "dockward.hcl"}},
		{[]string{"apply", "-c", "dockward."}, []string{"dockward.hcl"}},
		{[]string{"--root", "e"}, []string{"etc"}},
		{[]string{"--root", ""}, []string{"docs", "etc"}},
		{[]string{"plan", "--only", ""}, nil},
		// Flags and their values before the command are skipped.
		{[]string{"--root", "/srv/image", "pl"}, []string{"plan"}},
		{[]string{"--root", "=", "/srv/image", "--log-level=debug", "va"}, []string{"validate"}},
		{[]string{"--root", "/srv/image", "plan", "--o"}, []string{"--only"}},
		{[]string{"help", ""}, commandNames()},
		{[]string{"help", "ap"}, []string{"apply"}},
		{[]string{"help", "apply", ""}, nil},
		{[]string{"completion", ""}, []string{"bash", "zsh"}},
		{[]string{"completion", "bash", ""}, nil},
		{[]string{"init", ""}, nil},
		{[]string{"version", "--format", "", ""}, nil},
	}
	// Each command's flags, from the table.
	for _, c := range commands {
		cases = append(cases, struct {
			words []string
			want  []string
		}{[]string{c.name, "-"}, append(dashedNames(flagsOf(c)), "--help")})
	}
	var lines [][]string
	for _, tc := range cases {
		lines = append(lines, tc.words)
	}
	got := complete(t, lines)
	for i, tc := range cases {
		if diff := cmp.Diff(sorted(tc.want...), got[i]); diff != "" {
			t.Errorf("dockward %q: COMPREPLY (-want +got):\n%s", tc.words, diff)
		}
	}
}

// TestZshCompletion drives zsh's completion system in a pseudo-terminal
// (zsh/zpty): compinit with the script in $fpath, as the .deb installs it,
// then TAB on a command line, and the matches zsh offers.
func TestZshCompletion(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP in -short: drives zsh in a pseudo-terminal")
	}
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("SKIP: zsh not installed (apt-get install zsh); the zsh completion script is not tested")
	}
	script := completionScript(t, "zsh")
	if out, err := exec.Command(zsh, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	fpath := t.TempDir()
	if err := os.Rename(script, filepath.Join(fpath, "_dockward")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, dir+"/dockward.hcl", "", 0o600)
	writeFile(t, dir+"/etc/y", "", 0o600)

	cases := []struct {
		line string
		want []string
	}{
		{"dockward ", commandNames()},
		{"dockward a", []string{"apply", "audit"}},
		{"dockward plan --format ", []string{"json", "text"}},
		{"dockward plan --format=", []string{"json", "text"}},
		{"dockward --log-level ", []string{"debug", "error", "info", "warn"}},
		{"dockward --root /srv/image pl", []string{"plan"}},
		{"dockward completion ", []string{"bash", "zsh"}},
		{"dockward help ", commandNames()},
		{"dockward plan -c dockward.", []string{"dockward.hcl"}},
		{"dockward --root ", []string{"etc"}},
		{"dockward plan --o", []string{"--only"}},
	}
	for _, c := range commands {
		cases = append(cases, struct {
			line string
			want []string
		}{"dockward " + c.name + " -", append(dashedNames(flagsOf(c)), "--help", "-h")})
	}
	var lines []string
	for _, tc := range cases {
		lines = append(lines, tc.line)
	}
	got := zshComplete(t, zsh, fpath, dir, lines)
	for i, tc := range cases {
		want := slices.Clone(tc.want)
		slices.Sort(want)
		if diff := cmp.Diff(want, got[i]); diff != "" {
			t.Errorf("%q: matches (-want +got):\n%s", tc.line, diff)
		}
	}
}

// zshComplete returns, for each line, the matches zsh's completion offers
// at its end, as a compadd wrapper prints them when they are added.
func zshComplete(t *testing.T, zsh, fpath, dir string, lines []string) [][]string {
	t.Helper()
	// The inner zsh is interactive (completion needs the line editor) in a
	// pty; TAB is bound to complete-word; each line is typed, completed
	// and erased, then a marker printed.
	const prog = `zmodload zsh/zpty
zpty -b z zsh -f -i
zpty -w z "cd ${(q)DIR}; fpath=(${(q)FPATH_DIR} \$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w z 'compadd() { builtin compadd -O __m "$@"; local m; for m in $__m; do print -r -- "<<m>>$m<<"; done; builtin compadd "$@" }'
zpty -w z "zstyle ':completion:*' list-prompt ''; zstyle ':completion:*' menu no; bindkey '^I' complete-word; PROMPT=''"
zpty -w z 'print -r -- "<<ready>>"'
zpty -r z out '*<<ready>>*'
zpty -r z out '*<<ready>>*'
for line in "$@"; do
	zpty -w -n z "$line"$'\t'
	zpty -w z $'\C-u'
	zpty -w z 'print -r -- "<<done>>"'
	all=
	zpty -r z out '*<<done>>*'; all+=$out
	zpty -r z out '*<<done>>*'; all+=$out
	print -r -- "$all<<line>>"
done
zpty -d z`
	cmd := exec.Command(zsh, append([]string{"-f", "-c", prog, "zsh"}, lines...)...)
	cmd.Env = append(os.Environ(), "DIR="+dir, "FPATH_DIR="+fpath, "TERM=dumb")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
	outputs := strings.Split(string(out), "<<line>>")
	if len(outputs) != len(lines)+1 {
		t.Fatalf("zsh completed %d lines of %d:\n%s", len(outputs)-1, len(lines), out)
	}
	var all [][]string
	for _, o := range outputs[:len(lines)] {
		var got []string
		for _, f := range strings.Split(o, "<<m>>")[1:] {
			m, _, _ := strings.Cut(f, "<<")
			if !slices.Contains(got, m) {
				got = append(got, m)
			}
		}
		slices.Sort(got)
		all = append(all, got)
	}
	return all
}
