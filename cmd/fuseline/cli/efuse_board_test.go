package cli

import (
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/fixtures/virtual"
)

func TestEfuseSummaryBoard(t *testing.T) {
	t.Parallel()
	mac := [6]byte{0x7c, 0xdf, 0xa1, 0x00, 0x42, 0x01}
	spec, _ := flashSimSocket(t, virtual.Config{Chip: chip.C3(), MAC: mac})
	conn := []string{"--port", spec, "--before", "no-reset", "--after", "no-reset"}
	code, out, errOut := runFlashCLI(t, "", append([]string{"efuse", "summary"}, conn...)...)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"board:", spec + " (esp32c3)", "MAC:               7c:df:a1:00:42:01",
		"flash encryption:  off", "secure boot:       off", "BLOCK_KEY0", "KEY_PURPOSE_0"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	code, out, errOut = runFlashCLI(t, "", append([]string{"efuse", "summary", "--json"}, conn...)...)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r efuseReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Port != spec || r.Format != "board" || r.File != "" || r.Chip != "esp32c3" || r.Summary.MAC != "7c:df:a1:00:42:01" || len(r.Fields) == 0 {
		t.Errorf("JSON report: %+v", r)
	}
}

func TestEfuseBurnBoard(t *testing.T) {
	t.Parallel()
	spec, vb := flashSimSocket(t, virtual.Config{Chip: chip.S3()})
	conn := []string{"--port", spec, "--before", "no-reset", "--after", "no-reset"}
	burn := func(stdin string, args ...string) (int, string, string) {
		return runFlashCLI(t, stdin, append(append([]string{"efuse", "burn"}, args...), conn...)...)
	}
	get := func(name string) uint64 {
		t.Helper()
		v, err := vb.Efuse().Get(name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	// A dry run and a cancelled burn change nothing.
	code, out, errOut := burn("", "SECURE_VERSION=0x3", "--dry-run")
	if code != ExitOK || !strings.Contains(out, "SECURE_VERSION") || !strings.Contains(out, "IRREVERSIBLE") ||
		!strings.Contains(out, "dry run: nothing burned") {
		t.Fatalf("dry run: exit %d:\n%s%s", code, out, errOut)
	}
	code, out, errOut = burn("no\n", "SECURE_VERSION=0x3")
	if code != ExitFail || !strings.Contains(errOut, "Type BURN") || !strings.Contains(errOut, "not confirmed, nothing burned") {
		t.Fatalf("declined: exit %d:\n%s%s", code, out, errOut)
	}
	if v := get("SECURE_VERSION"); v != 0 {
		t.Fatalf("SECURE_VERSION = %#x after a dry run and a declined burn", v)
	}

	// A key with its purpose, confirmed on stdin.
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(0xA0 + i)
	}
	kf := flashWriteFile(t, t.TempDir(), "fe.key", key)
	code, out, errOut = burn("BURN\n", "--key", "BLOCK_KEY0:"+kf+":XTS_AES_128_KEY", "SECURE_VERSION=0x3")
	if code != ExitOK || !strings.Contains(out, "read back matches the plan") {
		t.Fatalf("burn: exit %d:\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"BLOCK_KEY0", "(secret key data, not shown)", "KEY_PURPOSE_0", "XTS_AES_128_KEY", "RD_DIS", "WR_DIS"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	rev := slices.Clone(key)
	slices.Reverse(rev)
	for _, secret := range []string{hex.EncodeToString(key), hex.EncodeToString(rev), hex.EncodeToString(key[:8]), hex.EncodeToString(rev[:8])} {
		if strings.Contains(strings.ToLower(out+errOut), secret) {
			t.Errorf("the key appears in the output")
		}
	}
	phys := vb.Efuse()
	if p := get("KEY_PURPOSE_0"); p != uint64(efuse.PurposeXTSAES128Key) {
		t.Errorf("KEY_PURPOSE_0 = %d", p)
	}
	if got, _ := phys.GetBytes("BLOCK_KEY0"); !slices.Equal(got, rev) {
		t.Errorf("BLOCK_KEY0 holds %x…, want the key reversed", got[:4])
	}
	if v := get("SECURE_VERSION"); v != 3 {
		t.Errorf("SECURE_VERSION = %#x", v)
	}
	if rd := get("RD_DIS"); rd&1 == 0 {
		t.Errorf("RD_DIS = %#x: the key is not read-protected", rd)
	}

	// Already there: nothing to do. Going back: refused before burning.
	code, out, _ = burn("", "SECURE_VERSION=0x3", "--yes")
	if code != ExitOK || !strings.Contains(out, "nothing to burn") {
		t.Errorf("same again: exit %d: %s", code, out)
	}
	code, out, errOut = burn("", "SECURE_VERSION=0x1", "--yes")
	if code != ExitFail || !strings.Contains(errOut, "refused, nothing burned") || !strings.Contains(errOut, "SECURE_VERSION") {
		t.Errorf("clearing a bit: exit %d:\n%s%s", code, out, errOut)
	}
	code, _, errOut = burn("", "--key", "BLOCK_KEY0:"+kf+":HMAC_UP", "--yes")
	if code != ExitFail || !strings.Contains(errOut, "refused") {
		t.Errorf("a used key block: exit %d: %s", code, errOut)
	}
	if v := get("SECURE_VERSION"); v != 3 {
		t.Errorf("SECURE_VERSION = %#x after refusals", v)
	}
}

func TestEfuseBurnUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"nothing", []string{"efuse", "burn", "--port", "socket://127.0.0.1:1"}, "nothing to burn"},
		{"no value", []string{"efuse", "burn", "--port", "socket://127.0.0.1:1", "SECURE_VERSION"}, "FIELD=VALUE"},
		{"bad key arg", []string{"efuse", "burn", "--port", "socket://127.0.0.1:1", "--key", "BLOCK_KEY0:x"}, "BLOCK_KEYn:FILE:PURPOSE"},
		{"no port", []string{"efuse", "summary"}, "--port is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _, errOut := runFlashCLI(t, "", tc.args...)
			if code != ExitUsage || !strings.Contains(errOut, tc.msg) {
				t.Errorf("exit %d, stderr %q; want %d with %q", code, errOut, ExitUsage, tc.msg)
			}
		})
	}
	// Field names are checked against the chip once connected.
	spec, _ := flashSimSocket(t, virtual.Config{Chip: chip.S3()})
	code, _, errOut := runFlashCLI(t, "", "efuse", "burn", "--port", spec, "--before", "no-reset", "--after", "no-reset", "NO_SUCH_FIELD=1")
	if code != ExitUsage || !strings.Contains(errOut, "NO_SUCH_FIELD") {
		t.Errorf("unknown field: exit %d: %s", code, errOut)
	}
}

// TestEfuseBurnLockdownBoard: burning a field that closes the ROM loader
// ends the link by design; on every chip (each with its own field name,
// taken from the eFuse table) that is a success, not a link error, and the
// field is burned.
func TestEfuseBurnLockdownBoard(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		c     chip.Chip
		field string
	}{
		{chip.S3(), "DIS_DOWNLOAD_MODE"},
		{chip.S3(), "ENABLE_SECURITY_DOWNLOAD"},
		{chip.C3(), "DIS_DOWNLOAD_MODE"},
		{chip.ESP32V3(), "UART_DOWNLOAD_DIS"},
	} {
		t.Run(tc.c.Name+"/"+tc.field, func(t *testing.T) {
			t.Parallel()
			spec, vb := flashSimSocket(t, virtual.Config{Chip: tc.c})
			code, out, errOut := runFlashCLI(t, "", "efuse", "burn", tc.field+"=1", "--yes", "--port", spec, "--before", "no-reset", "--after", "no-reset")
			if code != ExitOK || !strings.Contains(out, "the loader closed the link as the lockdown took effect") {
				t.Fatalf("exit %d:\n%s%s", code, out, errOut)
			}
			if v, err := vb.Efuse().Get(tc.field); err != nil || v != 1 {
				t.Errorf("%s = %d (%v) after the burn", tc.field, v, err)
			}
		})
	}
}
