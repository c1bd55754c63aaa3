package daemonjson

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/dockward/dockward/modules/internal/systemd"
)

// dockerd refuses to start when a setting is given both as a flag and in
// daemon.json ("the following directives are specified both as a flag and
// in the configuration file"). docker.service usually passes a few flags
// (-H fd://, --containerd=...) and operators add more in drop-ins, so before
// writing, the candidate's keys are checked against the flags in the unit's
// ExecStart, as systemd would run it.

// UnitExec is how systemd starts a service: its ExecStart command lines
// (drop-ins applied, variables not yet expanded) and its environment.
type UnitExec struct {
	// ExecStart holds each ExecStart= command line, argv[0] first.
	ExecStart [][]string
	// Environment holds the unit's Environment= settings, "NAME=value".
	Environment []string
	// EnvironmentFiles holds the unit's EnvironmentFile= settings in order.
	EnvironmentFiles []EnvFile
	// ActiveState is the unit's ActiveState when it was read ("active",
	// "inactive", ...); empty when the reader does not know it.
	ActiveState string
}

// EnvFile is one EnvironmentFile= setting.
type EnvFile struct {
	Path string
	// Optional is the "-" prefix: a missing file is not an error.
	Optional bool
}

// UnitReader reads a service unit's start command. ErrNoUnit means the unit
// does not exist (docker not installed yet): there are no flags to clash with.
type UnitReader interface {
	ReadUnit(ctx context.Context, unit string) (*UnitExec, error)
}

// ErrNoUnit is returned by a UnitReader for a unit systemd does not know:
// the shared adapter's not-found error.
var ErrNoUnit = systemd.ErrNoSuchUnit

// errNoBus means there is no system bus at all (no systemd, as in a
// container or an image build): nothing can start dockerd with flags.
var errNoBus = errors.New("no system bus")

// SystemdUnits reads units from systemd over the system bus
// (DBUS_SYSTEM_BUS_ADDRESS, or /run/dbus/system_bus_socket).
type SystemdUnits struct{}

// ReadUnit implements UnitReader.
func (SystemdUnits) ReadUnit(ctx context.Context, unit string) (*UnitExec, error) {
	if os.Getenv("DBUS_SYSTEM_BUS_ADDRESS") == "" {
		if _, err := os.Stat("/run/dbus/system_bus_socket"); errors.Is(err, os.ErrNotExist) {
			return nil, errNoBus
		}
	}
	conn := systemd.New(systemd.DialSystem)
	defer conn.Close()
	u, err := conn.State(ctx, unit)
	if err != nil {
		return nil, err
	}
	if u.LoadState == "not-found" {
		return nil, fmt.Errorf("read %s: %w", unit, ErrNoUnit)
	}
	props, err := conn.ServiceProperties(ctx, unit)
	if err != nil {
		return nil, err
	}
	ue, err := unitExecFromProps(props)
	if err != nil {
		return nil, err
	}
	ue.ActiveState = u.ActiveState
	return ue, nil
}

// unitExecFromProps decodes the org.freedesktop.systemd1.Service properties
// we need: ExecStart a(sasbttttuii), Environment as, EnvironmentFiles a(sb).
func unitExecFromProps(props map[string]any) (*UnitExec, error) {
	ue := &UnitExec{}
	if v, ok := props["ExecStart"]; ok {
		lines, ok := v.([][]any)
		if !ok {
			return nil, fmt.Errorf("ExecStart has type %T, want a(sasbttttuii)", v)
		}
		for _, l := range lines {
			if len(l) < 2 {
				return nil, fmt.Errorf("ExecStart entry has %d fields", len(l))
			}
			argv, ok := l[1].([]string)
			if !ok {
				return nil, fmt.Errorf("ExecStart argv has type %T", l[1])
			}
			ue.ExecStart = append(ue.ExecStart, argv)
		}
	}
	if v, ok := props["Environment"]; ok {
		env, ok := v.([]string)
		if !ok {
			return nil, fmt.Errorf("environment has type %T, want as", v)
		}
		ue.Environment = env
	}
	if v, ok := props["EnvironmentFiles"]; ok {
		files, ok := v.([][]any)
		if !ok {
			return nil, fmt.Errorf("EnvironmentFiles has type %T, want a(sb)", v)
		}
		for _, f := range files {
			if len(f) < 2 {
				return nil, fmt.Errorf("EnvironmentFiles entry has %d fields", len(f))
			}
			p, ok1 := f[0].(string)
			opt, ok2 := f[1].(bool)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("EnvironmentFiles entry has types %T, %T", f[0], f[1])
			}
			ue.EnvironmentFiles = append(ue.EnvironmentFiles, EnvFile{Path: p, Optional: opt})
		}
	}
	return ue, nil
}

// DockerdArgs returns the arguments systemd passes to dockerd (argv[1:] of
// the ExecStart line that runs dockerd, or of the last one), with the
// unit's variables expanded as systemd expands them. readFile reads the
// EnvironmentFiles; a missing optional one is skipped.
func DockerdArgs(ue *UnitExec, readFile func(string) ([]byte, error)) ([]string, error) {
	if len(ue.ExecStart) == 0 {
		return nil, nil
	}
	argv := ue.ExecStart[len(ue.ExecStart)-1]
	for _, a := range ue.ExecStart {
		if len(a) > 0 && filepath.Base(a[0]) == "dockerd" {
			argv = a
			break
		}
	}
	if len(argv) == 0 {
		return nil, nil
	}
	// Settings from EnvironmentFile= override those from Environment=,
	// later files override earlier ones (systemd.exec(5)).
	env := map[string]string{}
	for _, kv := range ue.Environment {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	for _, f := range ue.EnvironmentFiles {
		data, err := readFile(f.Path)
		if err != nil {
			if f.Optional && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("read EnvironmentFile %s: %w", f.Path, err)
		}
		for k, v := range ParseEnvFile(data) {
			env[k] = v
		}
	}
	return ExpandArgs(argv[1:], env), nil
}

// ParseEnvFile reads an EnvironmentFile as systemd does: NAME=VALUE lines,
// # and ; comments, blank lines, an optional "export ", single or double
// quotes around the value, backslash continuation lines.
func ParseEnvFile(data []byte) map[string]string {
	env := map[string]string{}
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	text = strings.ReplaceAll(text, "\\\n", "")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if !envName.MatchString(k) {
			continue
		}
		env[k] = unquoteEnv(strings.TrimSpace(v))
	}
	return env
}

func unquoteEnv(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var sb strings.Builder
		in := v[1 : len(v)-1]
		for i := 0; i < len(in); i++ {
			if in[i] == '\\' && i+1 < len(in) && strings.IndexByte("\"\\`$", in[i+1]) >= 0 {
				i++
			}
			sb.WriteByte(in[i])
		}
		return sb.String()
	}
	return v
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
var braceVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// ExpandArgs expands variables in command line arguments as systemd does
// for ExecStart (systemd.service(5), "Command lines"): a word that is
// exactly $NAME becomes the variable's value split into words (zero or
// more arguments); ${NAME} anywhere is replaced by the value as is, within
// its word; $$ is a literal $.
func ExpandArgs(args []string, env map[string]string) []string {
	var out []string
	for _, a := range args {
		if strings.HasPrefix(a, "$") && !strings.HasPrefix(a, "${") && !strings.HasPrefix(a, "$$") && envName.MatchString(a[1:]) {
			out = append(out, splitWords(env[a[1:]])...)
			continue
		}
		const dollar = "\x00dollar\x00"
		a = strings.ReplaceAll(a, "$$", dollar)
		a = braceVar.ReplaceAllStringFunc(a, func(m string) string { return env[m[2:len(m)-1]] })
		out = append(out, strings.ReplaceAll(a, dollar, "$"))
	}
	return out
}

// splitWords splits a variable's value into words at whitespace, honouring
// quotes, as systemd does for $NAME (EXTRACT_UNQUOTE|EXTRACT_RELAX).
func splitWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' && i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// Flag is one dockerd command line flag.
type Flag struct {
	Name  string // long name, without dashes ("log-driver")
	Value string // "" for a bare bool flag
	Arg   string // as written, for messages ("--log-driver=journald", "-H fd://")
}

// Flags parses dockerd arguments (pflag syntax: --name=value, --name value,
// -x value, -xvalue, combined bool shorthands like -D). Positional arguments
// (dockerd takes none) are ignored.
func Flags(args []string) []Flag {
	var out []Flag
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return out
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			f := Flag{Name: name, Value: val, Arg: a}
			if !hasVal && !boolFlags[name] && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
				f.Value = args[i]
				f.Arg = a + " " + args[i]
			}
			out = append(out, f)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			// Shorthands: bools may be combined (-Dl debug); the first
			// non-bool takes the rest of the word or the next argument.
			s := a[1:]
			for j := 0; j < len(s); j++ {
				name, known := shorthands[s[j]]
				if !known {
					name = string(s[j])
				}
				if boolFlags[name] {
					out = append(out, Flag{Name: name, Arg: "-" + string(s[j])})
					continue
				}
				f := Flag{Name: name, Arg: a}
				rest := strings.TrimPrefix(s[j+1:], "=")
				if rest != "" {
					f.Value = rest
				} else if i+1 < len(args) {
					i++
					f.Value = args[i]
					f.Arg = a + " " + args[i]
				}
				out = append(out, f)
				break
			}
		}
	}
	return out
}

// flagKeys maps the dockerd flags whose daemon.json key is not the flag's
// own name. Docker's documentation (docs.docker.com/reference/cli/dockerd,
// "Daemon configuration file") says the file's keys are the flags' names,
// except for flags that may be given several times, whose key is the
// plural; in dockerd's source these are the opts.NamedOption values in
// cmd/dockerd/config*.go and options.go. Every other flag's key is its
// long name (--log-driver -> "log-driver", --data-root -> "data-root",
// --containerd -> "containerd", --userns-remap -> "userns-remap").
var flagKeys = map[string]string{
	"host":                             "hosts",
	"label":                            "labels",
	"log-opt":                          "log-opts",
	"storage-opt":                      "storage-opts",
	"exec-opt":                         "exec-opts",
	"dns-opt":                          "dns-opts",
	"registry-mirror":                  "registry-mirrors",
	"insecure-registry":                "insecure-registries",
	"allow-nondistributable-artifacts": "allow-nondistributable-artifacts",
	"authorization-plugin":             "authorization-plugins",
	"node-generic-resource":            "node-generic-resources",
	"default-ulimit":                   "default-ulimits",
	"default-address-pool":             "default-address-pools",
	"default-network-opt":              "default-network-opts",
	"cdi-spec-dir":                     "cdi-spec-dirs",
	"add-runtime":                      "runtimes",
	"graph":                            "data-root", // -g, before Docker 23
}

// flagAlsoKeys are further keys a flag clashes with: Docker 28 made
// --host-gateway-ip a named option ("host-gateway-ips") and still reads the
// older single-address key.
var flagAlsoKeys = map[string][]string{
	"host-gateway-ip": {"host-gateway-ips"},
}

// shorthands are dockerd's one-letter flags.
var shorthands = map[byte]string{
	'H': "host", 'D': "debug", 'l': "log-level", 'p': "pidfile", 'G': "group",
	's': "storage-driver", 'b': "bridge", 'g': "graph", 'r': "restart",
}

// boolFlags are dockerd's bool flags: they take no separate value argument.
var boolFlags = map[string]bool{
	"debug": true, "validate": true, "tls": true, "tlsverify": true, "experimental": true,
	"raw-logs": true, "cri-containerd": true, "restart": true, "selinux-enabled": true,
	"iptables": true, "ip6tables": true, "ip-forward": true, "ip-forward-no-drop": true,
	"ip-masq": true, "ipv6": true, "icc": true, "userland-proxy": true, "live-restore": true,
	"init": true, "no-new-privileges": true, "rootless": true, "help": true, "version": true,
}

// notConfigKeys are flags that never clash with the file: the file's own
// path and dockerd's modes.
var notConfigKeys = map[string]bool{"config-file": true, "validate": true, "help": true, "version": true}

// dockerd merges runtimes from both places instead of refusing
// (skipDuplicates in daemon/config).
var mergedKeys = map[string]bool{"runtimes": true}

// flatKeys are daemon.json objects dockerd treats as one value; every other
// object's members are compared with the flags one level down, as dockerd
// does (configValuesSet: "proxies": {"http-proxy": ...} clashes with
// --http-proxy).
var flatKeys = map[string]bool{
	"cluster-store-opts": true, "log-opts": true, "runtimes": true, "default-ulimits": true,
	"features": true, "builder": true, "default-network-opts": true,
}

// FlagKeys returns the daemon.json keys a dockerd flag clashes with.
func FlagKeys(flag string) []string {
	k, ok := flagKeys[flag]
	if !ok {
		k = flag
	}
	return append([]string{k}, flagAlsoKeys[flag]...)
}

// Conflict is a setting given both as a dockerd flag and in daemon.json.
type Conflict struct {
	Key  string
	Flag Flag
}

// Conflicts returns the settings of doc that dockerd would also get from
// flags, in the order of the flags.
func Conflicts(doc *Document, flags []Flag) []Conflict {
	set := map[string]bool{}
	for _, k := range doc.Keys() {
		v, _ := doc.Lookup(k)
		if inner, ok := objectKeys(v); ok && !flatKeys[k] {
			for _, ik := range inner {
				set[ik] = true
			}
			continue
		}
		set[k] = true
	}
	var out []Conflict
	seen := map[string]bool{}
	for _, f := range flags {
		if notConfigKeys[f.Name] {
			continue
		}
		for _, k := range FlagKeys(f.Name) {
			if set[k] && !mergedKeys[k] && !seen[k] {
				seen[k] = true
				out = append(out, Conflict{Key: k, Flag: f})
			}
		}
	}
	return out
}

func objectKeys(v []byte) ([]string, bool) {
	if firstByte(v) != '{' {
		return nil, false
	}
	d, err := Parse(v)
	if err != nil {
		return nil, false
	}
	ks := d.Keys()
	sort.Strings(ks)
	return ks, true
}

func firstByte(v []byte) byte {
	for _, c := range v {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return c
		}
	}
	return 0
}

// ConflictError is the pre-flight refusal: writing the file would stop
// dockerd at its next start.
type ConflictError struct {
	Unit      string
	Path      string
	Conflicts []Conflict
}

func (e *ConflictError) Error() string {
	var parts []string
	for _, c := range e.Conflicts {
		parts = append(parts, fmt.Sprintf("%q (%s starts dockerd with %s)", c.Key, e.Unit, c.Flag.Arg))
	}
	return fmt.Sprintf("refusing to write %s: set both in the file and as a dockerd flag, which stops dockerd from starting: %s; remove the flag from the unit (systemctl edit %s) or the key from the configuration",
		e.Path, strings.Join(parts, ", "), e.Unit)
}

// configFileFlag returns the --config-file the unit passes, if any.
func configFileFlag(flags []Flag) (string, bool) {
	for _, f := range flags {
		if f.Name == "config-file" {
			return f.Value, true
		}
	}
	return "", false
}

// validateArgs are the unit's arguments to pass along with --validate, so
// that dockerd itself checks for clashes: all but --config-file (the
// candidate replaces the file) and --validate.
func validateArgs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--config-file":
			i++ // and its value
		case strings.HasPrefix(a, "--config-file="), a == "--validate":
		default:
			out = append(out, a)
		}
	}
	return out
}
