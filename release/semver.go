package release

import (
	"cmp"
	"errors"
	"strconv"
	"strings"
)

// semver is a parsed Semantic Versioning 2.0.0 version (semver.org), with an
// optional leading "v" as ESP-IDF projects write it. Build metadata is kept
// out of the comparison, as the spec says.
type semver struct {
	major, minor, patch uint64
	pre                 []string
}

func parseSemver(s string) (semver, error) {
	var v semver
	bad := errors.New("not a semantic version")
	s = strings.TrimPrefix(s, "v")
	s, build, hasBuild := strings.Cut(s, "+")
	if hasBuild && !validIdents(build, false) {
		return v, bad
	}
	core, pre, hasPre := strings.Cut(s, "-")
	if hasPre {
		if !validIdents(pre, true) {
			return v, bad
		}
		v.pre = strings.Split(pre, ".")
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return v, bad
	}
	nums := [3]*uint64{&v.major, &v.minor, &v.patch}
	for i, p := range parts {
		if !numeric(p) || len(p) > 1 && p[0] == '0' {
			return v, bad
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return v, bad
		}
		*nums[i] = n
	}
	return v, nil
}

func numeric(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validIdents checks dot-separated identifiers of [0-9A-Za-z-]; in a
// pre-release a numeric identifier must not have a leading zero.
func validIdents(s string, pre bool) bool {
	for id := range strings.SplitSeq(s, ".") {
		if id == "" {
			return false
		}
		for _, c := range id {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-') {
				return false
			}
		}
		if pre && numeric(id) && len(id) > 1 && id[0] == '0' {
			return false
		}
	}
	return true
}

// compare orders versions by semver precedence (spec §11).
func (a semver) compare(b semver) int {
	if c := cmp.Compare(a.major, b.major); c != 0 {
		return c
	}
	if c := cmp.Compare(a.minor, b.minor); c != 0 {
		return c
	}
	if c := cmp.Compare(a.patch, b.patch); c != 0 {
		return c
	}
	switch {
	case len(a.pre) == 0 && len(b.pre) == 0:
		return 0
	case len(a.pre) == 0:
		return 1 // a release ranks above its pre-releases
	case len(b.pre) == 0:
		return -1
	}
	for i := 0; i < len(a.pre) && i < len(b.pre); i++ {
		x, y := a.pre[i], b.pre[i]
		xn, yn := numeric(x), numeric(y)
		var c int
		switch {
		case xn && yn:
			// Compare numerically without overflow: longer is larger.
			c = cmp.Or(cmp.Compare(len(x), len(y)), strings.Compare(x, y))
		case xn:
			c = -1
		case yn:
			c = 1
		default:
			c = strings.Compare(x, y)
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a.pre), len(b.pre))
}

// CompareVersions compares two manifest versions by semantic-version
// precedence: -1 if a is older than b, 0 if they rank the same, +1 if newer.
func CompareVersions(a, b string) (int, error) {
	va, err := parseSemver(a)
	if err != nil {
		return 0, errors.New("release: version " + strconv.Quote(a) + " is not a semantic version")
	}
	vb, err := parseSemver(b)
	if err != nil {
		return 0, errors.New("release: version " + strconv.Quote(b) + " is not a semantic version")
	}
	return va.compare(vb), nil
}
