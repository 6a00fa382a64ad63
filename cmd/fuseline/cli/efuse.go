package cli

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/esp/flashenc"
	"fuseline/flasher"
)

// newEfuseCmd is "fuseline efuse": decode eFuse images offline, and read
// (summary) or burn a board's eFuses through its loader.
func newEfuseCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "efuse",
		Short: "Decode eFuse dumps and images; read and burn a board's eFuses",
	}
	cmd.AddCommand(newEfuseDecodeCmd(stdio), newEfuseSummaryCmd(stdio), newEfuseBurnCmd(stdio))
	return cmd
}

func newEfuseDecodeCmd(stdio Stdio) *cobra.Command {
	var (
		chipName string
		asJSON   bool
		all      bool
	)
	cmd := &cobra.Command{
		Use:   "decode --chip CHIP FILE",
		Short: "Name every eFuse field of an espefuse dump or a raw eFuse image",
		Long: `Decode FILE, either the text of "espefuse dump" or a raw image (every
block's words in block order, little-endian: 336 bytes on esp32s3/esp32c3,
124 on esp32), and print a security summary and every field with its value,
meaning and protection (R = readable, W = writable; "-" where RD_DIS or
WR_DIS took it away). Secret keys that still read back are not shown.
Reserved fields are left out unless --all is given. Exits 1 when FILE is
neither a dump nor an image of the chip.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if chipName == "" {
				return usageErr("efuse decode: --chip is required (esp32s3, esp32c3 or esp32)")
			}
			c, err := chip.ByName(chipName)
			if err != nil {
				return usageErr("efuse decode: %w", err)
			}
			b, err := readInputContext(cmd.Context(), "eFuse dump", args[0], efuse.MaxInput)
			if err != nil {
				return err
			}
			format := "raw"
			if efuse.LooksLikeDump(b) {
				format = "dump"
			}
			img, err := efuse.Parse(c.ID, b)
			if err != nil {
				return failErr(fmt.Errorf("efuse decode: %s: %w", args[0], err))
			}
			vals, err := efuse.Decode(img)
			if err != nil {
				return failErr(fmt.Errorf("efuse decode: %s: %w", args[0], err))
			}
			sum, err := efuse.Summarize(img)
			if err != nil {
				return failErr(fmt.Errorf("efuse decode: %s: %w", args[0], err))
			}
			out := describeEfuse(c, args[0], format, sum, vals, all)
			if asJSON {
				return writeJSON(stdio.Out, out)
			}
			return printEfuse(stdio.Out, out)
		},
	}
	cmd.Flags().StringVar(&chipName, "chip", "", "chip the file comes from: esp32s3, esp32c3 or esp32")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().BoolVar(&all, "all", false, "include reserved and undocumented fields")
	return cmd
}

type efuseReport struct {
	File    string         `json:"file,omitempty"`
	Port    string         `json:"port,omitempty"` // efuse summary: the board's port
	Format  string         `json:"format"`         // "dump", "raw" or "board"
	Chip    string         `json:"chip"`
	Summary efuseSummary   `json:"summary"`
	Fields  []efuseFieldJS `json:"fields"`
}

type efuseSummary struct {
	MAC                      string         `json:"mac"`
	Revision                 string         `json:"revision"`
	RevisionNote             string         `json:"revision_note,omitempty"`
	FlashEncryption          bool           `json:"flash_encryption"`
	FlashEncryptionPermanent bool           `json:"flash_encryption_permanent"`
	SecureBoot               bool           `json:"secure_boot"`
	SecureVersion            int            `json:"secure_version"`
	Download                 string         `json:"download_mode"`
	Keys                     []efuseKeySlot `json:"keys"`
}

type efuseKeySlot struct {
	Block    int    `json:"block"`
	Name     string `json:"name"`
	Purpose  string `json:"purpose,omitempty"`
	Empty    bool   `json:"empty"`
	Readable bool   `json:"readable"`
	Writable bool   `json:"writable"`
	Revoked  bool   `json:"revoked,omitempty"`
}

type efuseFieldJS struct {
	Name     string  `json:"name"`
	Block    int     `json:"block"`
	Word     int     `json:"word"`
	Bit      int     `json:"bit"`
	Width    int     `json:"width"`
	Value    string  `json:"value"`
	Raw      *uint64 `json:"raw,omitempty"` // fields up to 64 bits that read back
	Meaning  string  `json:"meaning,omitempty"`
	Readable bool    `json:"readable"`
	Writable bool    `json:"writable"`
	Secret   bool    `json:"secret,omitempty"`
	Hidden   bool    `json:"hidden,omitempty"`
}

func describeEfuse(c chip.Chip, file, format string, s efuse.Summary, vals []efuse.Value, all bool) efuseReport {
	r := efuseReport{File: file, Format: format, Chip: c.Arg()}
	r.Summary = efuseSummary{
		MAC:                      fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", s.MAC[0], s.MAC[1], s.MAC[2], s.MAC[3], s.MAC[4], s.MAC[5]),
		Revision:                 s.Revision.String(),
		RevisionNote:             s.RevisionNote,
		FlashEncryption:          s.FlashEncryption,
		FlashEncryptionPermanent: s.FlashEncryptionPermanent,
		SecureBoot:               s.SecureBoot,
		SecureVersion:            s.SecureVersion,
		Download:                 s.Download,
	}
	for _, k := range s.Keys {
		ks := efuseKeySlot{Block: k.Block, Name: k.Name, Empty: k.Empty, Readable: k.Readable, Writable: k.Writable, Revoked: k.Revoked}
		if c.ID != chip.ESP32 {
			ks.Purpose = k.Purpose.String()
		}
		r.Summary.Keys = append(r.Summary.Keys, ks)
	}
	for _, v := range vals {
		f := v.Field
		if f.Hidden && !all {
			continue
		}
		js := efuseFieldJS{Name: f.Name, Block: f.Block, Word: f.Word, Bit: f.Bit, Width: f.Width,
			Value: v.Text, Meaning: v.Meaning, Readable: v.Readable, Writable: v.Writable, Secret: v.Secret, Hidden: f.Hidden}
		if f.Width <= 64 && v.Readable && !v.Secret {
			raw := v.Raw
			js.Raw = &raw
		}
		r.Fields = append(r.Fields, js)
	}
	return r
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func printEfuse(w io.Writer, r efuseReport) error {
	s := r.Summary
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if r.Port != "" {
		fmt.Fprintf(tw, "board:\t%s (%s)\n", r.Port, r.Chip)
	} else {
		fmt.Fprintf(tw, "file:\t%s (%s, %s)\n", r.File, r.Format, r.Chip)
	}
	fmt.Fprintf(tw, "MAC:\t%s\n", s.MAC)
	rev := s.Revision
	if s.RevisionNote != "" {
		rev += " (" + s.RevisionNote + ")"
	}
	fmt.Fprintf(tw, "revision:\t%s\n", rev)
	fe := onOff(s.FlashEncryption)
	if s.FlashEncryptionPermanent {
		fe += " (permanent)"
	}
	fmt.Fprintf(tw, "flash encryption:\t%s\n", fe)
	fmt.Fprintf(tw, "secure boot:\t%s\n", onOff(s.SecureBoot))
	fmt.Fprintf(tw, "secure version:\t%d\n", s.SecureVersion)
	fmt.Fprintf(tw, "download mode:\t%s\n", s.Download)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "key blocks:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, k := range s.Keys {
		var state []string
		switch {
		case !k.Readable:
			state = append(state, "read-protected")
		case k.Empty:
			state = append(state, "empty")
		}
		if !k.Writable {
			state = append(state, "write-protected")
		}
		if k.Revoked {
			state = append(state, "revoked")
		}
		purpose := k.Purpose
		if purpose == "" {
			purpose = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", k.Name, purpose, strings.Join(state, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tR/W\tVALUE\tMEANING")
	var long []efuseFieldJS
	for _, f := range r.Fields {
		rw := []byte("RW")
		if !f.Readable {
			rw[0] = '-'
		}
		if !f.Writable {
			rw[1] = '-'
		}
		value := f.Value
		// Wide byte fields would stretch the table: show their start here
		// and the whole value below it.
		if f.Width > 64 && f.Readable && !f.Secret {
			compact := strings.ReplaceAll(f.Value, " ", "")
			if strings.Trim(compact, "0") == "" {
				value = fmt.Sprintf("0 (%d bytes)", f.Width/8)
			} else {
				value = compact[:16] + "…"
				long = append(long, f)
			}
		}
		meaning := f.Meaning
		if meaning == "" {
			meaning = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Name, rw, value, meaning)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(long) > 0 {
		fmt.Fprintln(w, "\nblock data (block byte order):")
		for _, f := range long {
			fmt.Fprintf(w, "  %s: %s\n", f.Name, f.Value)
		}
	}
	return nil
}

// newEfuseSummaryCmd is "fuseline efuse summary": read a board's eFuses
// over its loader and decode them like "efuse decode" does for a dump.
func newEfuseSummaryCmd(stdio Stdio) *cobra.Command {
	cf := &connFlags{}
	var asJSON, all bool
	cmd := &cobra.Command{
		Use:   "summary --port PORT",
		Short: "Read a board's eFuses and print the security summary and every field",
		Long: `Read every eFuse block of the board on --port through its loader
(READ_REG of the eFuse read registers: read-protected blocks read as zero)
and decode them as "fuseline efuse decode" does. Secret keys are never shown.
See "fuseline flash --help" for the port and reset flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			b, err := cf.connect(ctx, stdio, false)
			if err != nil {
				return err
			}
			img, err := b.sess.ReadEfuses(ctx)
			if err != nil {
				b.close(ctx, false)
				return boardErr(fmt.Errorf("efuse summary: %w", err))
			}
			b.close(ctx, true)
			vals, err := efuse.Decode(img)
			if err != nil {
				return failErr(fmt.Errorf("efuse summary: %w", err))
			}
			sum, err := efuse.Summarize(img)
			if err != nil {
				return failErr(fmt.Errorf("efuse summary: %w", err))
			}
			out := describeEfuse(b.sess.Chip(), "", "board", sum, vals, all)
			out.Port = b.name
			if asJSON {
				return writeJSON(stdio.Out, out)
			}
			return printEfuse(stdio.Out, out)
		},
	}
	cf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().BoolVar(&all, "all", false, "include reserved and undocumented fields")
	return cmd
}

// keyArg is one --key BLOCK:FILE:PURPOSE.
type keyArg struct {
	block, file, purpose string
}

func parseKeyArg(s string) (keyArg, error) {
	i, j := strings.Index(s, ":"), strings.LastIndex(s, ":")
	if i < 0 || j == i {
		return keyArg{}, usageErr("--key %q: want BLOCK_KEYn:FILE:PURPOSE, e.g. BLOCK_KEY0:key.bin:XTS_AES_128_KEY", s)
	}
	k := keyArg{block: s[:i], file: s[i+1 : j], purpose: s[j+1:]}
	if k.block == "" || k.file == "" || k.purpose == "" {
		return keyArg{}, usageErr("--key %q: want BLOCK_KEYn:FILE:PURPOSE", s)
	}
	return k, nil
}

// fieldArg is one FIELD=VALUE.
type fieldArg struct{ name, value string }

// newEfuseBurnCmd is "fuseline efuse burn": plan a burn against the
// board's eFuses, show it, ask, burn, and read back.
func newEfuseBurnCmd(stdio Stdio) *cobra.Command {
	cf := &connFlags{}
	var (
		keys                    []string
		writeProt, readProt     []string
		yes, dryRun             bool
		noReadProt, noWriteProt bool
	)
	cmd := &cobra.Command{
		Use:   "burn [FIELD=VALUE ...] [--key BLOCK_KEYn:FILE:PURPOSE ...]",
		Short: "Burn eFuses on a board, after showing the plan and asking",
		Long: `Plan the burn against what the board's eFuses read now, print every field
that changes (from → to; all of it is irreversible: eFuse bits only go from 0
to 1), ask for "BURN" on stdin unless --yes, then program the blocks through
the eFuse controller and read everything back.

FIELD=VALUE sets a field by its espefuse name: a number (0x.. or decimal)
for fields up to 64 bits, hex bytes in block byte order for wider ones.
--key BLOCK_KEYn:FILE:PURPOSE burns a 32-byte key file with a purpose
(XTS_AES_128_KEY, SECURE_BOOT_DIGEST0, HMAC_UP, …; XTS_AES_256_KEY takes a
64-byte file into BLOCK_KEYn and n+1). Flash-encryption keys are reversed
into block order as espefuse does; secret keys are read-protected (unless
--no-read-protect) and key blocks write-protected (unless --no-write-protect).
Secret key data is never printed.

Anything the plan cannot do (a bit that would go back to 0, a protected
field, a used key block, a combination espefuse forbids) is refused before
anything is burned (exit 1).`,
		Example: `  fuseline efuse burn --port /dev/ttyUSB0 --key BLOCK_KEY0:fe.key:XTS_AES_128_KEY SPI_BOOT_CRYPT_CNT=1
  fuseline efuse burn --port socket://127.0.0.1:5555 --before no-reset --dry-run SECURE_VERSION=0x3`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var fields []fieldArg
			for _, a := range args {
				n, v, ok := strings.Cut(a, "=")
				if !ok || n == "" || v == "" {
					return usageErr("efuse burn: %q: want FIELD=VALUE", a)
				}
				fields = append(fields, fieldArg{n, v})
			}
			var ks []keyArg
			for _, k := range keys {
				ka, err := parseKeyArg(k)
				if err != nil {
					return err
				}
				ks = append(ks, ka)
			}
			if len(fields) == 0 && len(ks) == 0 && len(writeProt) == 0 && len(readProt) == 0 {
				return usageErr("efuse burn: nothing to burn (give FIELD=VALUE, --key, --write-protect or --read-protect)")
			}
			ctx := cmd.Context()
			b, err := cf.connect(ctx, stdio, false)
			if err != nil {
				return err
			}
			ok := false
			defer func() { b.close(ctx, ok) }()
			c := b.sess.Chip()
			batch, err := buildBatch(c, fields, ks, writeProt, readProt, !noReadProt, !noWriteProt)
			if err != nil {
				return err
			}
			img, err := b.sess.ReadEfuses(ctx)
			if err != nil {
				return boardErr(fmt.Errorf("efuse burn: reading the eFuses: %w", err))
			}
			plan, err := efuse.NewPlan(img, batch)
			if err != nil {
				return failErr(fmt.Errorf("efuse burn: refused, nothing burned: %w", err))
			}
			if plan.Empty() {
				ok = true
				fmt.Fprintf(stdio.Out, "nothing to burn: every requested field already holds its value (%s)\n", strings.Join(plan.Unchanged, ", "))
				return nil
			}
			want := img.Clone()
			if err := efuse.Apply(want, plan); err != nil {
				return failErr(fmt.Errorf("efuse burn: simulating the plan: %w", err))
			}
			if err := printPlan(stdio.Out, b.name, c, img, want, plan); err != nil {
				return err
			}
			if dryRun {
				ok = true
				fmt.Fprintln(stdio.Out, "dry run: nothing burned")
				return nil
			}
			if !yes {
				fmt.Fprint(stdio.Err, "Type BURN to burn these eFuses (anything else cancels): ")
				line, _ := bufio.NewReader(stdio.In).ReadString('\n')
				if strings.TrimSpace(line) != "BURN" {
					return failErr(errors.New("efuse burn: not confirmed, nothing burned"))
				}
			}
			progs := make([]flasher.BlockProgram, 0, len(plan.Programs))
			for _, p := range plan.Programs {
				bp := flasher.ProgramFrom(p, len(img.Blocks[p.Block]))
				bp.Lockdown = slices.ContainsFunc(p.Fields, func(f string) bool { return efuse.ClosesLoader(c.ID, f) })
				progs = append(progs, bp)
			}
			err = b.sess.BurnBlocks(ctx, progs)
			b.prog.finish()
			switch {
			case errors.Is(err, flasher.ErrLinkClosedByLockdown):
				fmt.Fprintf(stdio.Out, "burned %d block program(s); the loader closed the link as the lockdown took effect (expected), so the result cannot be read back here\n", len(progs))
				b.after = "no-reset"
				ok = true
				return nil
			case err != nil:
				return boardErr(fmt.Errorf("efuse burn: %w", err))
			}
			after, err := b.sess.ReadEfuses(ctx)
			if err != nil {
				return boardErr(fmt.Errorf("efuse burn: burned, but reading back failed: %w", err))
			}
			view, err := want.ReadView()
			if err != nil {
				return failErr(err)
			}
			if diff := diffFields(view, after); len(diff) > 0 {
				return failErr(fmt.Errorf("efuse burn: read back differs from the plan in %s", strings.Join(diff, ", ")))
			}
			ok = true
			fmt.Fprintf(stdio.Out, "burned %d block program(s); read back matches the plan\n", len(progs))
			return nil
		},
	}
	cf.register(cmd.Flags())
	f := cmd.Flags()
	f.StringArrayVar(&keys, "key", nil, "burn a key: BLOCK_KEYn:FILE:PURPOSE (repeatable)")
	f.StringArrayVar(&writeProt, "write-protect", nil, "write-protect a field or block (repeatable)")
	f.StringArrayVar(&readProt, "read-protect", nil, "read-protect a field or block (repeatable)")
	f.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	f.BoolVar(&dryRun, "dry-run", false, "print the plan and stop")
	f.BoolVar(&noReadProt, "no-read-protect", false, "leave secret keys readable")
	f.BoolVar(&noWriteProt, "no-write-protect", false, "leave key blocks writable")
	return cmd
}

// buildBatch turns the arguments into an efuse.Batch for chip c.
func buildBatch(c chip.Chip, fields []fieldArg, keys []keyArg, wp, rp []string, readProtect, writeProtect bool) (efuse.Batch, error) {
	var b efuse.Batch
	for _, fa := range fields {
		f, err := efuse.FieldByName(c.ID, fa.name)
		if err != nil {
			return b, usageErr("efuse burn: %s: %w", fa.name, err)
		}
		if f.Width <= 64 {
			v, err := strconv.ParseUint(fa.value, 0, 64)
			if err != nil {
				return b, usageErr("efuse burn: %s=%s: want a number (0x.. or decimal)", fa.name, fa.value)
			}
			b.Set(f.Name, v)
			continue
		}
		data, err := hex.DecodeString(strings.TrimPrefix(strings.ReplaceAll(fa.value, ":", ""), "0x"))
		if err != nil || len(data) != (f.Width+7)/8 {
			return b, usageErr("efuse burn: %s: want %d bytes of hex in block byte order", fa.name, (f.Width+7)/8)
		}
		b.SetBytes(f.Name, data)
	}
	for _, ka := range keys {
		blk, err := efuse.BlockByName(c.ID, ka.block)
		if err != nil {
			return b, usageErr("efuse burn: --key %s: %w", ka.block, err)
		}
		data, err := readInput("efuse burn --key", ka.file, maxKeyFile)
		if err != nil {
			return b, err
		}
		burns, err := keyBurns(c, blk.Num, data, ka.purpose)
		if err != nil {
			return b, usageErr("efuse burn: --key %s:%s:%s: %w", ka.block, ka.file, ka.purpose, err)
		}
		for _, kb := range burns {
			kb.ReadProtect = readProtect && kb.Purpose.Secret()
			kb.WriteProtect = writeProtect
			b.BurnKey(kb)
		}
	}
	for _, n := range wp {
		b.WriteProtect(n)
	}
	for _, n := range rp {
		b.ReadProtect(n)
	}
	return b, nil
}

// keyBurns prepares key block contents the way espefuse burn_key stores
// them (§2.5): XTS keys reversed per 32-byte block, digests and HMAC keys
// as they are. The error never contains key bytes.
func keyBurns(c chip.Chip, block int, data []byte, purpose string) ([]efuse.KeyBurn, error) {
	up := strings.ToUpper(purpose)
	if c.ID == chip.ESP32 {
		var kb efuse.KeyBurn
		kb.Block = block
		switch up {
		case "FLASH_ENCRYPTION":
			bl, err := flashenc.KeyBlocks(chip.AES256Classic, data)
			if err != nil {
				return nil, err
			}
			kb.Data = bl[0]
		case "SECURE_BOOT_V1", "SECURE_BOOT_V2", "USER":
			if len(data) != 32 {
				return nil, fmt.Errorf("the key file holds %d bytes, want 32", len(data))
			}
			kb.Data = [32]byte(data)
		default:
			return nil, errors.New("ESP32 purposes: flash_encryption, secure_boot_v1, secure_boot_v2, user")
		}
		return []efuse.KeyBurn{kb}, nil
	}
	if up == "XTS_AES_256_KEY" {
		bl, err := flashenc.KeyBlocks(chip.XTSAES256, data)
		if err != nil {
			return nil, err
		}
		return []efuse.KeyBurn{
			{Block: block, Data: bl[0], Purpose: efuse.PurposeXTSAES256Key1},
			{Block: block + 1, Data: bl[1], Purpose: efuse.PurposeXTSAES256Key2},
		}, nil
	}
	p, err := efuse.ParsePurpose(up)
	if err != nil {
		return nil, err
	}
	if len(data) != 32 {
		return nil, fmt.Errorf("the key file holds %d bytes, want 32", len(data))
	}
	d := [32]byte(data)
	if p.IsXTS() {
		slices.Reverse(d[:])
	}
	return []efuse.KeyBurn{{Block: block, Data: d, Purpose: p}}, nil
}

// printPlan lists every field the plan changes, from → to, with secret
// data hidden.
func printPlan(w io.Writer, port string, c chip.Chip, before, after *efuse.Image, plan *efuse.Plan) error {
	bv, err := efuse.Decode(before)
	if err != nil {
		return failErr(err)
	}
	av, err := efuse.Decode(after)
	if err != nil {
		return failErr(err)
	}
	byName := func(vs []efuse.Value) map[string]efuse.Value {
		m := map[string]efuse.Value{}
		for _, v := range vs {
			m[v.Field.Name] = v
		}
		return m
	}
	bm, am := byName(bv), byName(av)
	secret := map[string]bool{}
	var names []string
	for _, p := range plan.Programs {
		for _, f := range p.Fields {
			if !slices.Contains(names, f) {
				names = append(names, f)
			}
			if p.Secret {
				secret[f] = true
			}
		}
	}
	fmt.Fprintf(w, "eFuse burn plan for the %s on %s:\n", c.Arg(), port)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  FIELD\tNOW\t\tAFTER\t")
	for _, n := range names {
		from, to := "?", "?"
		if v, ok := bm[n]; ok {
			from = v.Text
		}
		if v, ok := am[n]; ok {
			to = v.Text
			if v.Meaning != "" {
				to += " (" + v.Meaning + ")"
			}
		}
		if secret[n] || am[n].Secret {
			to = "(secret key data, not shown)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t→\t%s\tIRREVERSIBLE\n", n, shorten(from), shorten(to))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(plan.Unchanged) > 0 {
		fmt.Fprintf(w, "already set, not burned: %s\n", strings.Join(plan.Unchanged, ", "))
	}
	fmt.Fprintf(w, "%d field(s) in %d block program(s). eFuse bits only go from 0 to 1: none of this can be undone.\n", len(names), len(plan.Programs))
	return nil
}

func shorten(s string) string {
	if len(s) > 48 {
		return s[:45] + "…"
	}
	return s
}

// diffFields names the fields whose read-back differs from the plan.
func diffFields(want, got *efuse.Image) []string {
	if want.Equal(got) {
		return nil
	}
	var out []string
	for _, f := range efuse.Fields(want.Chip) {
		a, _ := want.GetBytes(f.Name)
		b, _ := got.GetBytes(f.Name)
		if string(a) != string(b) {
			out = append(out, f.Name)
		}
	}
	if len(out) == 0 {
		out = append(out, "unnamed bits")
	}
	return out
}
