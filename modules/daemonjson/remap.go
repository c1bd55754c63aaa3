package daemonjson

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/dockward/dockward/config"
	"github.com/hashicorp/hcl/v2"
)

// remapUser is a decoded userns-remap value. dockerd's forms are
// "default" (the user dockremap, which dockerd creates with its ranges),
// "user", "user:group", "uid" and "uid:gid" (dockerd's documentation,
// "Isolate containers with a user namespace").
type remapUser struct {
	name    string // the user's name; "" for a uid or for "default"
	numeric bool   // given as a uid: no block can be matched to it
	rng     hcl.Range
}

// maxID is the largest uid or gid: (uid_t)-1 means "no id" to the kernel.
const maxID = 1<<32 - 2

// decodeRemap checks a userns_remap value. Anything but the forms above
// is refused, and so is root in either place: dockerd remapping onto
// root runs containers without a user namespace, with a warning in its
// log the only sign.
func decodeRemap(s string, rng hcl.Range) (remapUser, hcl.Diagnostics) {
	fail := func(detail string) (remapUser, hcl.Diagnostics) {
		return remapUser{}, hcl.Diagnostics{errAt(rng, "Invalid userns_remap", detail)}
	}
	if s == "default" {
		return remapUser{rng: rng}, nil
	}
	if t := strings.TrimFunc(s, unicode.IsSpace); t != s || strings.ToLower(s) != s {
		guess := strings.ToLower(t)
		if _, d := decodeRemap(guess, rng); guess != "" && !d.HasErrors() {
			return fail(fmt.Sprintf("%q has spaces, line breaks or capitals that no user name has. Did you mean %q?", s, guess))
		}
	}
	parts := strings.Split(s, ":")
	if len(parts) > 2 {
		return fail(fmt.Sprintf("%q: userns_remap is \"default\", a user, user:group, a uid or uid:gid.", s))
	}
	user := parts[0]
	out := remapUser{rng: rng}
	if id, ok, msg := parseID(user, "uid"); msg != "" {
		return fail(msg)
	} else if ok {
		if id == 0 {
			return fail(rootRemap("uid 0", "user"))
		}
		out.numeric = true
	} else {
		if !config.ValidUserName(user) {
			return fail(fmt.Sprintf("%q is not a user name: lower-case letters, digits, _ and -, starting with a letter or _, at most 32 characters; or \"default\" for the user dockremap.", user))
		}
		if user == "root" {
			return fail(rootRemap("root", "user"))
		}
		out.name = user
	}
	if len(parts) == 2 {
		group := parts[1]
		if id, ok, msg := parseID(group, "gid"); msg != "" {
			return fail(msg)
		} else if ok && id == 0 {
			return fail(rootRemap("gid 0", "group"))
		} else if !ok && !config.ValidUserName(group) {
			return fail(fmt.Sprintf("%q is not a group name: lower-case letters, digits, _ and -, starting with a letter or _, at most 32 characters (user:group).", group))
		} else if group == "root" {
			return fail(rootRemap("root", "group"))
		}
	}
	var diags hcl.Diagnostics
	if out.numeric {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "userns_remap by uid",
			Detail:  fmt.Sprintf("dockward cannot tell which user uid %s is while reading the configuration, so it cannot check that a subordinate_ids block gives it the ranges dockerd needs to start. Name the user instead to have that checked.", user),
			Subject: rng.Ptr()})
	}
	return out, diags
}

// parseID reports whether s is a number, and whether it is a valid id.
func parseID(s, what string) (uint64, bool, string) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false, ""
	}
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id > maxID {
		return 0, false, fmt.Sprintf("%s is not a valid %s (0 to %d).", s, what, maxID)
	}
	return id, true, ""
}

func rootRemap(who, what string) string {
	return fmt.Sprintf("userns_remap onto %s (the %s root) maps containers' root to the host's root: dockerd then runs without user namespaces, and only warns. Use \"default\" (the user dockremap) or an unprivileged user with a subordinate_ids block.", who, what)
}

var _ config.Requirer = (*Block)(nil)

// Requirements implements config.Requirer: a user named in userns_remap
// needs its subordinate_ids block, since dockerd refuses to start for a
// remap user without ranges in /etc/subuid and /etc/subgid. "default" needs
// none: dockerd creates dockremap and its ranges itself.
func (b *Block) Requirements() []config.Requirement {
	if b.remap.name == "" {
		return nil
	}
	why := fmt.Sprintf("userns_remap = %q needs ranges for %s in /etc/subuid and /etc/subgid, or dockerd refuses to start; declare subordinate_ids %q {} so that dockward makes them.",
		b.remap.name, b.remap.name, b.remap.name)
	if b.remap.name == "dockremap" {
		why += ` Or write "default", for which dockerd makes dockremap and its ranges itself.`
	}
	return []config.Requirement{{ID: "subordinate_ids." + b.remap.name, Range: b.remap.rng, Why: why}}
}
