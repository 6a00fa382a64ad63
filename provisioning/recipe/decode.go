package recipe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"go.yaml.in/yaml/v3"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/reports/audit"
)

// MaxSize bounds the bytes Parse accepts: a recipe is a page of YAML.
const MaxSize = 64 << 10

// Error is one problem with a recipe: where it is (file, line and column,
// counted from 1; 0 when the problem is not at one place) and which field
// (dotted path, "lockdown.download").
type Error struct {
	File         string
	Line, Column int
	Field        string
	Msg          string
	Err          error // underlying cause, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("recipe: ")
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Parse decodes and validates a recipe. file names the recipe in errors and
// is the base for relative paths (its directory). Nothing is read from disk:
// the paths a recipe names stay unresolved (see Load). Every problem found
// is reported, joined; each is an *Error.
func Parse(file string, b []byte) (*Recipe, error) {
	d := &decoder{file: file}
	if len(b) > MaxSize {
		return nil, &Error{File: file, Msg: fmt.Sprintf("%d bytes is more than the %d a recipe may have", len(b), MaxSize)}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: file, Msg: "empty recipe"}
		}
		return nil, d.syntaxErr(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, d.syntaxErr(err)
		}
		return nil, &Error{File: file, Line: line, Msg: "more than one YAML document; a recipe is one"}
	}
	r := defaults()
	r.Source = Source{File: file, Dir: filepath.Dir(file), SHA256: sum(b)}
	if len(doc.Content) != 1 {
		return nil, &Error{File: file, Msg: "empty recipe"}
	}
	d.recipe(doc.Content[0], &r)
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	return &r, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) syntaxErr(err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if strings.HasPrefix(m[2], "did not find expected") {
			// yaml.v3 reports parser errors with a 0-based line (its
			// scanner errors are 1-based).
			line++
		}
		return &Error{File: d.file, Line: line, Msg: "YAML syntax: " + m[2], Err: err}
	}
	return &Error{File: d.file, Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: "), Err: err}
}

type decoder struct {
	file string
	errs []error
}

func (d *decoder) fail(n *yaml.Node, field, format string, a ...any) {
	e := &Error{File: d.file, Field: field, Msg: fmt.Sprintf(format, a...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fields walks a mapping: every key must be one of handlers (sorted in the
// "known" list of the error), once. A null value (a section left empty)
// is an empty mapping. It returns the keys seen.
func (d *decoder) fields(n *yaml.Node, path string, handlers map[string]func(v *yaml.Node, field string)) map[string]*yaml.Node {
	seen := map[string]*yaml.Node{}
	if isNull(n) {
		return seen
	}
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		d.fail(n, path, "YAML anchors and aliases are not allowed in a recipe")
		return seen
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping (key: value lines), got %s", kindName(n))
		return seen
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		field := join(path, key)
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "a key must be a plain name")
			continue
		}
		if v.Kind == yaml.AliasNode || v.Anchor != "" {
			d.fail(v, field, "YAML anchors and aliases are not allowed in a recipe")
			continue
		}
		h, ok := handlers[key]
		if !ok {
			known := make([]string, 0, len(handlers))
			for name := range handlers {
				known = append(known, name)
			}
			slices.Sort(known)
			d.fail(k, field, "unknown field (known here: %s)", strings.Join(known, ", "))
			continue
		}
		if prev, dup := seen[key]; dup {
			d.fail(k, field, "given twice (first on line %d)", prev.Line)
			continue
		}
		seen[key] = k
		h(v, field)
	}
	return seen
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return fmt.Sprintf("the string %q", n.Value)
		case "!!int":
			return "the number " + n.Value
		case "!!float":
			return "the number " + n.Value
		case "!!bool":
			return n.Value
		case "!!null":
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func (d *decoder) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.fail(n, field, "want a string, got %s (quote it if it is one)", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) boolean(n *yaml.Node, field string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		d.fail(n, field, "want true or false, got %s", kindName(n))
		return false, false
	}
	var v bool
	if err := n.Decode(&v); err != nil {
		d.fail(n, field, "want true or false, got %s", kindName(n))
		return false, false
	}
	return v, true
}

func (d *decoder) integer(n *yaml.Node, field string) (int, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.fail(n, field, "want a whole number, got %s", kindName(n))
		return 0, false
	}
	var v int
	if err := n.Decode(&v); err != nil {
		d.fail(n, field, "want a whole number, got %s", kindName(n))
		return 0, false
	}
	return v, true
}

// list calls each for every element of a sequence; null is an empty list.
func (d *decoder) list(n *yaml.Node, field string, each func(v *yaml.Node, field string)) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, field, "want a list ([a, b] or lines starting with -), got %s", kindName(n))
		return
	}
	for i, v := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		if v.Kind == yaml.AliasNode || v.Anchor != "" {
			d.fail(v, f, "YAML anchors and aliases are not allowed in a recipe")
			continue
		}
		each(v, f)
	}
}

func (d *decoder) ref(n *yaml.Node, field string) (Ref, bool) {
	s, ok := d.str(n, field)
	if !ok {
		return Ref{}, false
	}
	if strings.TrimSpace(s) == "" || strings.ContainsRune(s, 0) {
		d.fail(n, field, "want a file path, got %s", kindName(n))
		return Ref{}, false
	}
	return Ref{Path: s, Line: n.Line, Column: n.Column, Field: field}, true
}

func (d *decoder) oneOf(n *yaml.Node, field string, choices ...string) (string, bool) {
	s, ok := d.str(n, field)
	if !ok {
		return "", false
	}
	if !slices.Contains(choices, s) {
		d.fail(n, field, "%q is not one of %s", s, strings.Join(choices, ", "))
		return "", false
	}
	return s, true
}

func (d *decoder) recipe(n *yaml.Node, r *Recipe) {
	var chipNode, schemeNode, floorNode, downloadNode, revokeNode, keepNode *yaml.Node
	var keyNodes []*yaml.Node
	schemeSet := false
	seen := d.fields(n, "", map[string]func(*yaml.Node, string){
		"version": func(v *yaml.Node, f string) {
			if x, ok := d.integer(v, f); ok && x != Version {
				d.fail(v, f, "format version %d is not supported (this station reads version %d)", x, Version)
			}
		},
		"name": func(v *yaml.Node, f string) {
			if s, ok := d.str(v, f); ok {
				if strings.TrimSpace(s) == "" || len(s) > 64 || strings.ContainsAny(s, "\x00\n\r\t") {
					d.fail(v, f, "want a one-line name of 1 to 64 characters")
					return
				}
				// The name reaches terminals, evidence and the audit log.
				if err := audit.CheckText(f, s, 64); err != nil {
					if fe, ok := errors.AsType[*audit.FieldError](err); ok {
						d.fail(v, f, "%s", fe.Reason)
					} else {
						d.fail(v, f, "%v", err)
					}
					return
				}
				r.Name = s
			}
		},
		"chip": func(v *yaml.Node, f string) {
			chipNode = v
			if s, ok := d.str(v, f); ok {
				c, err := chip.ByName(s)
				if err != nil {
					d.fail(v, f, "%q is not a supported chip (esp32s3, esp32c3, esp32)", s)
					chipNode = nil
					return
				}
				r.Chip = c
			} else {
				chipNode = nil
			}
		},
		"release": func(v *yaml.Node, f string) {
			seen := d.fields(v, f, map[string]func(*yaml.Node, string){
				"path": func(v *yaml.Node, f string) {
					if p, ok := d.ref(v, f); ok {
						r.Release.Path = p
					}
				},
				"format": func(v *yaml.Node, f string) {
					if s, ok := d.oneOf(v, f, string(FormatAuto), string(FormatESPIDF), string(FormatSigned)); ok {
						r.Release.Format = ReleaseFormat(s)
					}
				},
				"trust": func(v *yaml.Node, f string) {
					d.list(v, f, func(v *yaml.Node, f string) {
						if p, ok := d.ref(v, f); ok {
							r.Release.Trust = append(r.Release.Trust, p)
						}
					})
				},
				"crls": func(v *yaml.Node, f string) {
					d.list(v, f, func(v *yaml.Node, f string) {
						if p, ok := d.ref(v, f); ok {
							r.Release.CRLs = append(r.Release.CRLs, p)
						}
					})
				},
				"signers": func(v *yaml.Node, f string) {
					d.list(v, f, func(v *yaml.Node, f string) {
						if s, ok := d.str(v, f); ok {
							if strings.TrimSpace(s) == "" {
								d.fail(v, f, "want a signer name (certificate CN or DN)")
								return
							}
							r.Release.Signers = append(r.Release.Signers, s)
						}
					})
				},
			})
			if _, ok := seen["path"]; !ok {
				d.fail(v, join(f, "path"), "missing: the release directory is required")
			}
			if r.Release.Format == FormatESPIDF && (len(r.Release.Trust) > 0 || len(r.Release.CRLs) > 0 || len(r.Release.Signers) > 0) {
				d.fail(v, f, "trust, crls and signers apply to signed releases, not to format esp-idf")
			}
			if r.Release.Format == FormatSigned && len(r.Release.Trust) == 0 {
				d.fail(v, join(f, "trust"), "missing: a signed release needs at least one trust anchor")
			}
		},
		"secure_boot": func(v *yaml.Node, f string) {
			seen := d.fields(v, f, map[string]func(*yaml.Node, string){
				"keys": func(v *yaml.Node, f string) {
					d.list(v, f, func(v *yaml.Node, f string) {
						if p, ok := d.ref(v, f); ok {
							r.SecureBoot.Keys = append(r.SecureBoot.Keys, p)
							keyNodes = append(keyNodes, v)
						}
					})
					if len(r.SecureBoot.Keys) == 0 || len(r.SecureBoot.Keys) > 3 {
						d.fail(v, f, "want 1 to 3 public keys, got %d", len(r.SecureBoot.Keys))
					}
				},
				"revoke": func(v *yaml.Node, f string) {
					revokeNode = v
					d.list(v, f, func(v *yaml.Node, f string) {
						if x, ok := d.integer(v, f); ok {
							if slices.Contains(r.SecureBoot.Revoke, x) {
								d.fail(v, f, "slot %d is listed twice", x)
								return
							}
							r.SecureBoot.Revoke = append(r.SecureBoot.Revoke, x)
						}
					})
				},
				"keep_unused_slots_open": func(v *yaml.Node, f string) {
					keepNode = v
					if x, ok := d.boolean(v, f); ok {
						r.SecureBoot.KeepUnusedSlotsOpen = x
					}
				},
			})
			if _, ok := seen["keys"]; !ok {
				d.fail(v, join(f, "keys"), "missing: Secure Boot v2 needs 1 to 3 public keys")
			}
		},
		"flash_encryption": func(v *yaml.Node, f string) {
			defer func() {
				if schemeNode == nil {
					d.fail(v, join(f, "scheme"), "missing: xts-aes-128, xts-aes-256 or aes-256-classic")
				}
			}()
			d.fields(v, f, map[string]func(*yaml.Node, string){
				"scheme": func(v *yaml.Node, f string) {
					schemeNode = v
					if s, ok := d.oneOf(v, f, "xts-aes-128", "xts-aes-256", "aes-256-classic"); ok {
						schemeSet = true
						switch s {
						case "xts-aes-128":
							r.FlashEncryption.Scheme = chip.XTSAES128
						case "xts-aes-256":
							r.FlashEncryption.Scheme = chip.XTSAES256
						default:
							r.FlashEncryption.Scheme = chip.AES256Classic
						}
					}
				},
				"mode": func(v *yaml.Node, f string) {
					if s, ok := d.str(v, f); ok {
						if s != "release" {
							d.fail(v, f, "%q is not supported: only release mode (encryption on for good) is", s)
							return
						}
						r.FlashEncryption.Mode = s
					}
				},
			})
		},
		"anti_rollback": func(v *yaml.Node, f string) {
			d.fields(v, f, map[string]func(*yaml.Node, string){
				"floor": func(v *yaml.Node, f string) {
					floorNode = v
					if x, ok := d.integer(v, f); ok {
						if x < 0 {
							d.fail(v, f, "a secure version cannot be negative")
							return
						}
						r.AntiRollback.Floor = x
					}
				},
			})
		},
		"lockdown": func(v *yaml.Node, f string) {
			boolField := func(dst *bool) func(*yaml.Node, string) {
				return func(v *yaml.Node, f string) {
					if x, ok := d.boolean(v, f); ok {
						*dst = x
					}
				}
			}
			d.fields(v, f, map[string]func(*yaml.Node, string){
				"jtag":              boolField(&r.Lockdown.JTAG),
				"direct_boot":       boolField(&r.Lockdown.DirectBoot),
				"download_caches":   boolField(&r.Lockdown.DownloadCaches),
				"manual_encryption": boolField(&r.Lockdown.ManualEncryption),
				"download": func(v *yaml.Node, f string) {
					downloadNode = v
					if s, ok := d.oneOf(v, f, string(DownloadSecure), string(DownloadDisabled), string(DownloadEnabled)); ok {
						r.Lockdown.Download = Download(s)
					}
				},
			})
		},
		"write_mode": func(v *yaml.Node, f string) {
			if s, ok := d.oneOf(v, f, string(HostEncrypted), string(ChipEncrypted)); ok {
				r.WriteMode = WriteMode(s)
			}
		},
		"verify": func(v *yaml.Node, f string) {
			boolField := func(dst *bool) func(*yaml.Node, string) {
				return func(v *yaml.Node, f string) {
					if x, ok := d.boolean(v, f); ok {
						*dst = x
					}
				}
			}
			d.fields(v, f, map[string]func(*yaml.Node, string){
				"md5":                boolField(&r.Verify.MD5),
				"decrypt_and_verify": boolField(&r.Verify.DecryptAndVerify),
				"spi_probe":          boolField(&r.Verify.SPIProbe),
				"boot_check":         boolField(&r.Verify.BootCheck),
				"boot_timeout": func(v *yaml.Node, f string) {
					if s, ok := d.str(v, f); ok {
						t, err := time.ParseDuration(s)
						if err != nil || t < time.Second || t > 10*time.Minute {
							d.fail(v, f, "want a duration from 1s to 10m such as 10s, got %q", s)
							return
						}
						r.Verify.BootTimeout = t
					}
				},
			})
		},
		"escrow": func(v *yaml.Node, f string) {
			seen := d.fields(v, f, map[string]func(*yaml.Node, string){
				"enabled": func(v *yaml.Node, f string) {
					if x, ok := d.boolean(v, f); ok {
						r.Escrow.Enabled = x
					}
				},
				"recipient": func(v *yaml.Node, f string) {
					if s, ok := d.str(v, f); ok {
						if _, err := age.ParseX25519Recipient(s); err != nil {
							d.fail(v, f, "not an age X25519 recipient (age1…)")
							return
						}
						r.Escrow.Recipient = s
					}
				},
			})
			if r.Escrow.Enabled && seen["recipient"] == nil {
				d.fail(v, join(f, "recipient"), "missing: escrow needs an age recipient to seal the key to")
			}
		},
		"subdevices": func(v *yaml.Node, f string) { d.subdevices(v, f, r) },
	})

	// Required sections.
	for _, req := range []struct{ key, why string }{
		{"chip", "which chip the recipe is for"},
		{"release", "the firmware release"},
		{"secure_boot", "the Secure Boot v2 public keys"},
		{"flash_encryption", "the flash-encryption scheme"},
	} {
		if seen[req.key] == nil {
			d.fail(n, req.key, "missing: %s is required", req.why)
		}
	}
	if chipNode == nil {
		return // the chip-dependent checks need a chip
	}
	d.validateForChip(r, chipNode, schemeNode, schemeSet, floorNode, downloadNode, revokeNode, keepNode, keyNodes)
}

// validateForChip applies the rules that depend on the chip (§3.1, §3.6,
// §6): schemes, key slots, lockdown fields and the anti-rollback width.
func (d *decoder) validateForChip(r *Recipe, chipNode, schemeNode *yaml.Node, schemeSet bool, floorNode, downloadNode, revokeNode, keepNode *yaml.Node, keyNodes []*yaml.Node) {
	c := r.Chip
	at := func(n *yaml.Node) *yaml.Node {
		if n == nil {
			return chipNode
		}
		return n
	}
	if schemeSet && !c.SupportsEncryption(r.FlashEncryption.Scheme) {
		var names []string
		for _, e := range c.Encryptions {
			names = append(names, e.String())
		}
		d.fail(at(schemeNode), "flash_encryption.scheme", "%v does not support %v (supported: %s)", c.Name, r.FlashEncryption.Scheme, strings.Join(names, ", "))
	}
	maxFloor := 16
	if c.ID == chip.ESP32 {
		maxFloor = 32
	}
	if r.AntiRollback.Floor > maxFloor {
		d.fail(at(floorNode), "anti_rollback.floor", "%d is above the %d versions the %v SECURE_VERSION field can count", r.AntiRollback.Floor, maxFloor, c.Name)
	}
	n := len(r.SecureBoot.Keys)
	d.validateSlots(r, revokeNode, keepNode, chipNode)
	if c.ID == chip.ESP32 {
		if n > 1 {
			d.fail(keyNodes[1], "secure_boot.keys", "ESP32 holds one Secure Boot v2 key digest (BLOCK2), got %d keys", n)
		}
		if r.Lockdown.Download == DownloadSecure {
			d.fail(at(downloadNode), "lockdown.download", "ESP32 has no secure download mode; use disabled or enabled")
		}
		if r.WriteMode == ChipEncrypted {
			d.fail(chipNode, "write_mode", "chip-encrypted writes on ESP32 need the flasher stub; use host-encrypted")
		}
	} else {
		blocks := n + 1
		if r.FlashEncryption.Scheme == chip.XTSAES256 {
			blocks++
		}
		if blocks > c.KeyBlocks {
			d.fail(chipNode, "secure_boot.keys", "%d key blocks needed, %v has %d", blocks, c.Name, c.KeyBlocks)
		}
	}
}

// validateSlots checks secure_boot.revoke and keep_unused_slots_open
// against the chip's digest slots and settles SecureBoot.Revoke: every
// unused slot (the host workflow's last Secure Boot step, §6.9), unless the
// recipe opts out with keep_unused_slots_open, when revoke names the unused
// slots still to revoke. A revoke list that leaves a slot open without the
// opt-out is refused: a slot left open is a choice the recipe must state.
func (d *decoder) validateSlots(r *Recipe, revokeNode, keepNode, chipNode *yaml.Node) {
	c, sb := r.Chip, &r.SecureBoot
	at := func(n *yaml.Node) *yaml.Node {
		if n == nil {
			return chipNode
		}
		return n
	}
	n := len(sb.Keys)
	if efuse.RevokeField(c.ID, 0) == "" {
		if len(sb.Revoke) > 0 {
			d.fail(at(revokeNode), "secure_boot.revoke", "%v has no key revocation", c.Name)
		}
		if sb.KeepUnusedSlotsOpen {
			d.fail(at(keepNode), "secure_boot.keep_unused_slots_open", "%v has %d digest slot and no key revocation: there is no unused slot to keep open", c.Name, c.SecureBootDigests)
		}
		sb.Revoke = nil
		return
	}
	var unused []int
	for s := n; s < c.SecureBootDigests; s++ {
		unused = append(unused, s)
	}
	ok := true
	for i, s := range sb.Revoke {
		switch {
		case s < 0 || s >= c.SecureBootDigests:
			d.fail(at(revokeNode), fmt.Sprintf("secure_boot.revoke[%d]", i), "digest slots are 0…%d, got %d", c.SecureBootDigests-1, s)
			ok = false
		case s < n:
			d.fail(at(revokeNode), fmt.Sprintf("secure_boot.revoke[%d]", i), "slot %d holds key %d of this recipe; only unused slots (%d…%d) can be revoked", s, s, n, c.SecureBootDigests-1)
			ok = false
		}
	}
	if !ok || sb.KeepUnusedSlotsOpen {
		slices.Sort(sb.Revoke)
		return
	}
	if revokeNode != nil && len(sb.Revoke) < len(unused) {
		var open []string
		for _, s := range unused {
			if !slices.Contains(sb.Revoke, s) {
				open = append(open, strconv.Itoa(s))
			}
		}
		d.fail(at(revokeNode), "secure_boot.revoke", "leaves unused slot %s open; every unused slot is revoked by default (leave revoke out), or state keep_unused_slots_open: true to keep the slots revoke does not name open", strings.Join(open, ", "))
		return
	}
	sb.Revoke = unused
}

// subdeviceName is the manifest's rule for a sub-device name (package
// release), so every name a recipe accepts can match a release file.
var subdeviceName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,31}$`)

// virtualName is a virtual board's name: one path element.
var virtualName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// subdevices decodes the subdevices section: a mapping of device name to
// {link, chip}.
func (d *decoder) subdevices(n *yaml.Node, path string, r *Recipe) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping of sub-device names (name: {link: …, chip: …}), got %s", kindName(n))
		return
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := join(path, k.Value)
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			d.fail(k, path, "a sub-device name must be a plain name, got %s", kindName(k))
			continue
		}
		if !subdeviceName.MatchString(k.Value) {
			d.fail(k, field, "%q is not a sub-device name (a-z, 0-9, '.', '_', '-', up to 32, as in the release manifest)", k.Value)
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			d.fail(k, field, "given twice (first on line %d)", prev.Line)
			continue
		}
		seen[k.Value] = k
		if v.Kind == yaml.AliasNode || v.Anchor != "" {
			d.fail(v, field, "YAML anchors and aliases are not allowed in a recipe")
			continue
		}
		if v.Kind != yaml.MappingNode {
			d.fail(v, field, "want a mapping (link: …, chip: …), got %s", kindName(v))
			continue
		}
		sd := Subdevice{Name: k.Value, Line: k.Line, Column: k.Column}
		var linkOK, chipOK bool
		have := d.fields(v, field, map[string]func(*yaml.Node, string){
			"link": func(v *yaml.Node, f string) {
				s, ok := d.str(v, f)
				if !ok {
					return
				}
				if addr, ok := strings.CutPrefix(s, LinkTCP); ok {
					host, port, err := net.SplitHostPort(addr)
					p, perr := strconv.Atoi(port)
					if err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
						d.fail(v, f, "%q: want tcp://HOST:PORT with a port from 1 to 65535", s)
						return
					}
				} else if name, ok := strings.CutPrefix(s, LinkVirtual); ok {
					if !virtualName.MatchString(name) {
						d.fail(v, f, "%q: want virtual:NAME, NAME one path element of letters, digits, '.', '_', '-'", s)
						return
					}
				} else {
					d.fail(v, f, "%q is not a link: want tcp://HOST:PORT or virtual:NAME", s)
					return
				}
				sd.Link, linkOK = s, true
			},
			"chip": func(v *yaml.Node, f string) {
				s, ok := d.str(v, f)
				if !ok {
					return
				}
				c, err := chip.ByName(s)
				if err != nil {
					d.fail(v, f, "%q is not a supported chip (esp32s3, esp32c3, esp32)", s)
					return
				}
				sd.Chip, chipOK = c, true
			},
		})
		if have["link"] == nil {
			d.fail(v, join(field, "link"), "missing: how the station reaches the sub-device (tcp://HOST:PORT or virtual:NAME)")
		}
		if have["chip"] == nil {
			d.fail(v, join(field, "chip"), "missing: the sub-device's chip (esp32s3, esp32c3, esp32)")
		}
		if linkOK && chipOK {
			r.Subdevices = append(r.Subdevices, sd)
		}
	}
}
