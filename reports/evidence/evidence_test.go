package evidence_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"fuseline/reports/evidence"
	"fuseline/reports/evidence/evidencetest"
)

var update = flag.Bool("update", false, "rewrite the golden evidence files in testdata/")

func TestNewEfuseSnapshotKeepsOnlyDigests(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{0xA5, 0x5A, 0xC3, 0x3C}, 8)
	snap, err := evidence.NewEfuseSnapshot(
		map[string]uint64{"SPI_BOOT_CRYPT_CNT": 7, "KEY_PURPOSE_0": 4, "SECURE_BOOT_KEY_REVOKE0": 0},
		[]evidence.KeyMaterial{{Block: "BLOCK_KEY0", Purpose: "XTS_AES_128_KEY", ReadProtected: true, Data: key, Source: evidence.SourceBurned}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := snap.KeyBlocks[0].Digest, evidence.DigestKey(key); got != want {
		t.Errorf("digest %s, want %s", got, want)
	}
	if snap.KeyBlocks[0].Empty {
		t.Error("a non-zero key reported empty")
	}
	r := evidencetest.Board(evidencetest.LotOptions{}, 0)
	r.Efuse.After = snap
	b, err := evidence.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, form := range []string{
		string(key), hex.EncodeToString(key), strings.ToUpper(hex.EncodeToString(key)),
		base64.StdEncoding.EncodeToString(key), hex.EncodeToString(key[:8]),
	} {
		if bytes.Contains(b, []byte(form)) {
			t.Errorf("the record holds key bytes (%d chars of them)", len(form))
		}
	}
	// The block reads back as zero once read-protected: Empty is about the digested bytes.
	z, err := evidence.NewEfuseSnapshot(nil, []evidence.KeyMaterial{{Block: "BLOCK_KEY1", Data: make([]byte, 32)}})
	if err != nil || !z.KeyBlocks[0].Empty || z.KeyBlocks[0].Source != evidence.SourceReadback {
		t.Errorf("zero block: %+v, %v", z.KeyBlocks, err)
	}
}

func TestNewEfuseSnapshotRefusesKeyFields(t *testing.T) {
	t.Parallel()
	const secret = 0x1122334455667788
	for _, name := range []string{"BLOCK_KEY0", "BLOCK_KEY5", "block_key3", "BLOCK4", "BLOCK1", "BLOCK_SYS_DATA2", "BLOCK_USR_DATA",
		"KEY0", "KEY_5", "ENCRYPT_FLASH_KEY", "FLASH_ENCRYPTION", "SECURE_BOOT_KEY", "SECURE_BOOT_V2", "XTS_AES_128_KEY"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := evidence.NewEfuseSnapshot(map[string]uint64{name: secret}, nil)
			if err == nil {
				t.Fatalf("%s accepted as a field value", name)
			}
			for _, form := range []string{"1122334455667788", "1234605616436508552"} {
				if strings.Contains(strings.ToLower(err.Error()), form) {
					t.Errorf("error %q shows the value", err)
				}
			}
		})
	}
	for _, name := range []string{"KEY_PURPOSE_0", "SECURE_BOOT_KEY_REVOKE0", "DIS_DOWNLOAD_MANUAL_ENCRYPT", "SPI_BOOT_CRYPT_CNT", "WR_DIS", "RD_DIS", "FLASH_CRYPT_CNT"} {
		t.Run("ok/"+name, func(t *testing.T) {
			t.Parallel()
			if _, err := evidence.NewEfuseSnapshot(map[string]uint64{name: 1}, nil); err != nil {
				t.Errorf("%s refused: %v", name, err)
			}
		})
	}
	bad := []struct {
		name string
		keys []evidence.KeyMaterial
	}{
		{"no block", []evidence.KeyMaterial{{Data: []byte{1}}}},
		{"no data", []evidence.KeyMaterial{{Block: "BLOCK_KEY0"}}},
		{"twice", []evidence.KeyMaterial{{Block: "BLOCK_KEY0", Data: []byte{1}}, {Block: "BLOCK_KEY0", Data: []byte{1}}}},
		{"source", []evidence.KeyMaterial{{Block: "BLOCK_KEY0", Data: []byte{1}, Source: "guess"}}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := evidence.NewEfuseSnapshot(nil, tc.keys); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestMarshalParseRoundTrip(t *testing.T) {
	t.Parallel()
	for _, r := range evidencetest.Lot(evidencetest.LotOptions{N: 20, Seed: 7}) {
		t.Run(r.ID, func(t *testing.T) {
			t.Parallel()
			b, err := evidence.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := evidence.Canonical(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, r) {
				t.Errorf("round trip differs:\n got %+v\nwant %+v", *got, *r)
			}
			// Reformatted JSON still parses, but is not canonical.
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			compact, _ := json.Marshal(v)
			if _, err := evidence.Parse(compact); err != nil {
				t.Errorf("compact form does not parse: %v", err)
			}
			if _, err := evidence.Canonical(compact); err == nil {
				t.Error("compact (key-sorted) form accepted as canonical")
			}
		})
	}
}

func TestMarshalNormalizes(t *testing.T) {
	t.Parallel()
	r := evidencetest.Board(evidencetest.LotOptions{}, 1)
	loc := time.FixedZone("CET", 3600)
	r.Timing.Start = r.Timing.Start.In(loc)
	r.Steps[0].Start = r.Steps[0].Start.In(loc)
	r.Checks = nil
	a, err := evidence.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if r.Timing.Start.Location() != loc {
		t.Error("Marshal modified its argument")
	}
	if !bytes.Contains(a, []byte(`"checks": []`)) || bytes.Contains(a, []byte("+01:00")) {
		t.Errorf("not normalized:\n%s", a)
	}
	if _, err := evidence.Canonical(a); err != nil {
		t.Error(err)
	}
}

func TestGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file string
		i    int
	}{{"pass.json", 0}, {"fail.json", 3}, {"refused-esp32.json", 8}, {"pass-no-probe.json", 2}} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			b, err := evidence.Marshal(evidencetest.Board(evidencetest.LotOptions{}, tc.i))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(b, want) {
				t.Errorf("canonical bytes of board %d differ from %s (the %s format changed? then it needs a new schema version)", tc.i, path, evidence.Schema)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	good, err := evidence.Marshal(evidencetest.Board(evidencetest.LotOptions{}, 3))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	obj := func(m map[string]any, k string) map[string]any { return m[k].(map[string]any) }
	list := func(m map[string]any, k string, i int) map[string]any { return m[k].([]any)[i].(map[string]any) }
	tests := []struct {
		name   string
		in     []byte
		field  string // want FormatError.Field
		offset bool   // want an offset >= 0
	}{
		{"empty", nil, "", true},
		{"syntax", []byte(`{"schema": "fuseline.evidence/v1",,}`), "", true},
		{"truncated", good[:len(good)/2], "", true},
		{"trailing", append(append([]byte{}, good...), "{}"...), "", true},
		{"unknown field", edit(func(m map[string]any) { m["key"] = "x" }), "", true},
		{"wrong type", edit(func(m map[string]any) { obj(m, "timing")["baud"] = "fast" }), "timing.baud", true},
		{"schema", edit(func(m map[string]any) { m["schema"] = "fuseline.evidence/v3" }), "schema", false},
		{"v1 schema over v2 checks", edit(func(m map[string]any) { m["schema"] = evidence.SchemaV1 }), "checks[0].established", false},
		{"check without establishment", edit(func(m map[string]any) { delete(list(m, "checks", 2), "established") }), "checks[2].established", false},
		{"mac", edit(func(m map[string]any) { obj(m, "device")["mac"] = "3C:61:05:00:00:03" }), "device.mac", false},
		{"operator", edit(func(m map[string]any) { obj(m, "operator")["id"] = "" }), "operator.id", false},
		{"verdict", edit(func(m map[string]any) { obj(m, "result")["verdict"] = "MAYBE" }), "result.verdict", false},
		{"fail without reason", edit(func(m map[string]any) { obj(m, "result")["reason"] = " " }), "result.reason", false},
		{"pass with failed step", edit(func(m map[string]any) {
			obj(m, "result")["verdict"] = "PASS"
		}), "result.verdict", false},
		{"silent skip", edit(func(m map[string]any) { list(m, "steps", 7)["error"] = "" }), "steps[7].error", false},
		{"unexplained check", edit(func(m map[string]any) { list(m, "checks", 0)["verified"] = false }), "checks[0].because", false},
		{"key field", edit(func(m map[string]any) { obj(obj(obj(m, "efuse"), "after"), "fields")["BLOCK_KEY0"] = 1 }), "efuse.after.fields", false},
		{"bad digest", edit(func(m map[string]any) { obj(m, "recipe")["sha256"] = "abc" }), "", true},
		{"step end", edit(func(m map[string]any) { list(m, "steps", 0)["end"] = "2000-01-01T00:00:00Z" }), "steps[0].end", false},
		{"duration", edit(func(m map[string]any) { obj(m, "timing")["duration"] = "soon" }), "", true},
		{"no timing", edit(func(m map[string]any) { obj(m, "timing")["start"] = "0001-01-01T00:00:00Z" }), "timing", false},
		{"plain but encrypted", edit(func(m map[string]any) { list(m, "images", 0)["write_mode"] = "plain" }), "images[0].encrypted", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := evidence.Parse(tc.in)
			fe, ok := errors.AsType[*evidence.FormatError](err)
			if !ok {
				t.Fatalf("error %v (%T), want *FormatError", err, err)
			}
			if fe.Field != tc.field {
				t.Errorf("field %q, want %q (%v)", fe.Field, tc.field, err)
			}
			if tc.offset != (fe.Offset >= 0) {
				t.Errorf("offset %d (%v)", fe.Offset, err)
			}
			if !strings.HasPrefix(err.Error(), "evidence: ") {
				t.Errorf("message %q does not start with the package", err)
			}
		})
	}
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	st := evidencetest.NewStation(1)
	other := evidencetest.NewStation(2)
	r := evidencetest.Board(evidencetest.LotOptions{}, 0)
	data, sig, err := evidence.Sign(r, st.Priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := evidence.VerifySignature(data, sig, st.Key); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	// Plain Ed25519 over the file bytes, as the package doc promises.
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
	if !ed25519.Verify(st.Key.Public, data, raw) {
		t.Error("signature is not plain Ed25519 over the file bytes")
	}
	tampered := bytes.Replace(data, []byte(`"verdict": "PASS"`), []byte(`"verdict": "FAIL"`), 1)
	tests := []struct {
		name      string
		data, sig []byte
		key       *evidence.StationKey
		want      error
	}{
		{"tampered", tampered, sig, st.Key, evidence.ErrBadSignature},
		{"other key", data, sig, other.Key, evidence.ErrBadSignature},
		{"garbage sig", data, []byte("not base64!\n"), st.Key, nil},
		{"short sig", data, []byte(base64.StdEncoding.EncodeToString(raw[:32]) + "\n"), st.Key, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := evidence.VerifySignature(tc.data, tc.sig, tc.key)
			if err == nil {
				t.Fatal("verified")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := evidence.SignBytes(data, fakeSigner{}); err == nil {
		t.Error("a non-Ed25519 signer was accepted")
	}
}

type fakeSigner struct{ ed25519.PrivateKey }

func (fakeSigner) Public() crypto.PublicKey { return "not a key" }

func TestStationKey(t *testing.T) {
	t.Parallel()
	st := evidencetest.NewStation(1)
	vkey, err := st.Key.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(st.Key.Public)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	for _, tc := range []struct {
		name, in string
		wantName string
	}{
		{"verifier key", string(vkey), evidencetest.StationName},
		{"with comments", "# station line1-st3\n\n" + string(vkey) + "\n", evidencetest.StationName},
		{"pem", string(pemKey), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := evidence.ParseStationKey([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if k.Name != tc.wantName || !k.Equal(st.Key) {
				t.Errorf("got %q %x", k.Name, k.Public)
			}
			out, err := k.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			k2, err := evidence.ParseStationKey(out)
			if err != nil || !k2.Equal(k) || k2.Name != k.Name {
				t.Errorf("MarshalText does not round-trip: %v", err)
			}
		})
	}
	skey := st.SignerKey()
	for _, tc := range []struct{ name, in string }{
		{"private key", skey},
		{"garbage", "hello"},
		{"two keys", string(vkey) + string(vkey)},
		{"rsa pem", "-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n"},
	} {
		t.Run("bad/"+tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := evidence.ParseStationKey([]byte(tc.in))
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), skey[12:]) {
				t.Error("error shows the private key")
			}
		})
	}
	name, priv, err := evidence.ParseStationPrivateKey(skey)
	if err != nil || name != evidencetest.StationName || !priv.Equal(st.Priv) {
		t.Errorf("ParseStationPrivateKey: %q %v", name, err)
	}
	if _, _, err := evidence.ParseStationPrivateKey(string(vkey)); err == nil || strings.Contains(err.Error(), string(vkey[:20])) {
		t.Errorf("public key as private: %v", err)
	}
}

func TestCheckpoint(t *testing.T) {
	t.Parallel()
	st := evidencetest.NewStation(1)
	var log evidencetest.Log
	for i := range 5 {
		if _, err := log.Append([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := st.Checkpoint(&log)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := log.Root()
	pemKey := &evidence.StationKey{Public: st.Key.Public}
	for _, k := range []*evidence.StationKey{st.Key, pemKey} {
		c, err := evidence.OpenCheckpoint(cp, k)
		if err != nil {
			t.Fatalf("key %q: %v", k.Name, err)
		}
		if c.Size != 5 || c.Root != root || c.Origin != evidencetest.Origin || c.Signer != evidencetest.StationName {
			t.Errorf("got %+v", c)
		}
	}
	for _, tc := range []struct {
		name string
		msg  []byte
		key  *evidence.StationKey
	}{
		{"other key", cp, evidencetest.NewStation(2).Key},
		{"other key, pem", cp, &evidence.StationKey{Public: evidencetest.NewStation(2).Key.Public}},
		{"changed size", bytes.Replace(cp, []byte("\n5\n"), []byte("\n6\n"), 1), st.Key},
		{"unsigned", evidence.FormatCheckpoint("x", 1, root), st.Key},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := evidence.OpenCheckpoint(tc.msg, tc.key); !errors.Is(err, evidence.ErrBadProof) {
				t.Errorf("error %v, want ErrBadProof", err)
			}
		})
	}
	// tlog.FormatTree output reads as a checkpoint too.
	c, err := evidence.ParseCheckpoint([]byte("go.sum database tree\n5\n" + root.String() + "\n"))
	if err != nil || c.Size != 5 {
		t.Errorf("FormatTree form: %v", err)
	}
	for _, bad := range []string{"", "o\n5\n", "o\n-1\n" + root.String() + "\n", "o\n05\n" + root.String() + "\n", "o\n5\nnothash\n", "\n5\n" + root.String() + "\n"} {
		if _, err := evidence.ParseCheckpoint([]byte(bad)); err == nil {
			t.Errorf("ParseCheckpoint(%q) accepted", bad)
		}
	}
}

func TestFieldPaths(t *testing.T) {
	t.Parallel()
	paths := evidence.FieldPaths()
	for _, want := range []string{"device.mac", "images.plaintext_sha256", "efuse.after.key_blocks.digest", "steps.duration", "checks.because", "result.verdict", "timing.bytes_on_wire"} {
		if !evidence.HasField(want) {
			t.Errorf("HasField(%q) false", want)
		}
		found := false
		for _, p := range paths {
			found = found || p == want
		}
		if !found {
			t.Errorf("FieldPaths lacks %q", want)
		}
	}
	for _, p := range paths {
		if !evidence.HasField(p) {
			t.Errorf("FieldPaths lists %q but HasField rejects it", p)
		}
	}
	for _, bad := range []string{"", "device.MAC", "device.mac.x", "images.sha256", "efuse.after.fields", "efuse.after.fields.lower", "timing.start.year", "efuse.after.key_blocks.digest.x"} {
		if bad == "efuse.after.fields" {
			continue // the map itself is a field
		}
		if evidence.HasField(bad) {
			t.Errorf("HasField(%q) true", bad)
		}
	}
	if !evidence.HasField("efuse.after.fields") || !evidence.HasField("efuse.after.fields.SPI_BOOT_CRYPT_CNT") {
		t.Error("map paths")
	}
}

func TestWriteSummary(t *testing.T) {
	t.Parallel()
	for _, i := range []int{0, 2, 3, 8} {
		r := evidencetest.Board(evidencetest.LotOptions{}, i)
		if i == 2 {
			r.Station.LoaderStub = evidence.SHA256([]byte("stub"))
		}
		var b strings.Builder
		if err := evidence.WriteSummary(&b, r); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if loader := strings.Contains(out, "Loader    flasher stub sha256 "+r.Station.LoaderStub.String()[:12]); loader != (i == 2) {
			t.Errorf("board %d: summary's loader line present %v, want %v:\n%s", i, loader, i == 2, out)
		}
		if n := strings.Count(out, "\n"); n > 30 {
			t.Errorf("board %d: %d lines, more than a screen:\n%s", i, n, out)
		}
		want := []string{r.Device.MAC, r.Device.Chip, r.Result.Verdict, r.Operator.ID, r.Station.ID, "widget 1.4.2"}
		if r.Result.Verdict != evidence.PASS {
			want = append(want, r.Result.Reason, r.Result.Code)
		}
		for _, c := range r.Checks {
			if !c.Verified {
				want = append(want, c.Name, "not verified, because "+c.Because)
			}
		}
		for _, s := range r.Steps {
			if s.Result != evidence.StepOK {
				want = append(want, s.Name, s.Error)
			}
		}
		flat := strings.Join(strings.Fields(out), " ") // the summary wraps long lines
		for _, w := range want {
			if !strings.Contains(flat, strings.Join(strings.Fields(w), " ")) {
				t.Errorf("board %d: summary lacks %q:\n%s", i, w, out)
			}
		}
		if i == 0 && !strings.Contains(out, "SPI_BOOT_CRYPT_CNT 0→7") {
			t.Errorf("summary lacks the eFuse change:\n%s", out)
		}
	}
}
