package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

var update = flag.Bool("update", false, "rewrite testdata/ goldens made by this package")

// TestGolden pins the record and checkpoint formats: a deterministic run
// (fixed clock, seeded key and IDs) must produce testdata/ byte for byte.
func TestGolden(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, testConfig(t, dir))
	writeRuns(t, l, 0, 2)
	appendAll(t, l, []Entry{
		{Operator: "qa lead Żaneta", Event: EventConfigChange, Result: ResultInfo,
			Details: Details{"what": "recipe", "recipe_sha256": strings.Repeat("01", 32), "note": `quote " back\ <html>&`}},
		{Operator: "bob", Event: EventOperatorSignIn, Result: ResultInfo},
	})
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	lay := NewLayout(dir)
	files := map[string]string{
		"records.log":     lay.Log,
		"checkpoint.note": filepath.Join(lay.Checkpoints, checkpointName(18)),
		"station.pub":     lay.PublicKey,
	}
	for golden, made := range files {
		got, err := os.ReadFile(made)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", golden)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestGolden -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s:\n got %q\nwant %q", made, path, got, want)
		}
	}
	// The golden log verifies against the golden checkpoint and key.
	v, err := ReadVerifier("testdata/station.pub")
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := os.ReadFile("testdata/checkpoint.note")
	rep, err := VerifyFile(ctx, "testdata/records.log", VerifyOptions{Checkpoints: []CheckpointFile{{Name: "golden", Note: cp}}, Verifier: v})
	if err != nil || !rep.Intact() || rep.Covered != 18 {
		t.Fatalf("golden log: %v %+v", err, rep)
	}
}

func TestParseRecordRoundTrip(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/records.log")
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		r, err := ParseRecord(line)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		again, err := r.Marshal()
		if err != nil || !bytes.Equal(again, line) {
			t.Fatalf("line %d does not round-trip: %v\n%s\n%s", i+1, err, line, again)
		}
	}
}

func TestParseRecordRejects(t *testing.T) {
	t.Parallel()
	good := `{"seq":3,"time":"2026-11-21T10:00:00.123456Z","station":"st-01","operator":"alice","device":"24:0a:c4:00:00:01","event":"intake","id":"ev-1","result":"ok","prev":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`
	if _, err := ParseRecord([]byte(good)); err != nil {
		t.Fatalf("good line: %v", err)
	}
	tests := []struct {
		name     string
		from, to string
		offset   int // for a FormatError; -1: expect a FieldError
	}{
		{"space after comma", `,"time"`, `, "time"`, 8},
		{"fields reordered", `"seq":3,"time":"2026-11-21T10:00:00.123456Z"`, `"time":"2026-11-21T10:00:00.123456Z","seq":3`, 0},
		{"unknown field", `"result":"ok"`, `"result":"ok","key":"x"`, 154},
		{"duplicate field", `"result":"ok"`, `"result":"ok","result":"ok"`, 154},
		{"nanoseconds", `.123456Z`, `.123456789Z`, -1},
		{"trailing zero in time", `.123456Z`, `.123450Z`, 16},
		{"time zone not Z", `.123456Z`, `.123456+00:00`, 16},
		{"upper-case MAC", `24:0a:c4`, `24:0A:C4`, -1},
		{"seq as float", `"seq":3`, `"seq":3.0`, 8},
		{"seq negative", `"seq":3`, `"seq":-3`, 7},
		{"empty details", `"result":"ok"`, `"result":"ok","details":{}`, 167},
		{"prev too short", `"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="`, `"AAAA"`, 162},
		{"trailing garbage", `="}`, `="} x`, 209},
		{"not JSON", `{"seq"`, `["seq"`, 0},
		{"invalid UTF-8", `alice`, "al\xffce", 76},
		{"secret in details", `"result":"ok"`, `"result":"ok","details":{"flash_key":"x"}`, -1},
		{"escaped slash", `"st-01"`, `"st\u002d01"`, 59},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			line := strings.Replace(good, tc.from, tc.to, 1)
			if line == good {
				t.Fatal("mutation did not apply")
			}
			_, err := ParseRecord([]byte(line))
			if err == nil {
				t.Fatal("accepted")
			}
			var fe *FormatError
			var de *FieldError
			switch {
			case tc.offset >= 0:
				if !errors.As(err, &fe) {
					t.Fatalf("%v: want a FormatError", err)
				}
				if fe.Offset != tc.offset {
					t.Errorf("offset %d, want %d (%v)", fe.Offset, tc.offset, err)
				}
			case !errors.As(err, &de):
				t.Fatalf("%v: want a FieldError", err)
			}
		})
	}
}

// TestNoKeyMaterial is the contract of the package doc: whatever a caller
// does, a key does not get into a record, and no error quotes it.
func TestNoKeyMaterial(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, testConfig(t, dir))
	key := make([]byte, 32)
	newSeededRand(77).Read(key)
	edKey := ed25519.NewKeyFromSeed(key)
	der, _ := x509.MarshalPKCS8PrivateKey(edKey)
	skey, _, _ := note.GenerateKey(newSeededRand(78), "x")
	forms := map[string]string{
		"hex":          hex.EncodeToString(key),
		"HEX":          strings.ToUpper(hex.EncodeToString(key)),
		"hex 128-bit":  hex.EncodeToString(key[:16]),
		"base64":       base64.StdEncoding.EncodeToString(key),
		"base64url":    base64.RawURLEncoding.EncodeToString(key),
		"0x-hex":       "0x" + hex.EncodeToString(key),
		"pem":          strings.ReplaceAll(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "\n", " "),
		"note private": skey,
	}
	for name, secret := range forms {
		for _, e := range []Entry{
			{Details: Details{"comment": secret}},
			{Details: Details{"region": "app0", "note": "key is " + secret}},
			{Details: Details{"key_digest": "fine", "x": secret}},
			{Operator: secret},
			{Run: secret},
			{ID: secret},
			{Device: secret},
		} {
			if e.Operator == "" {
				e.Operator = "alice"
			}
			e.Event, e.Result = EventEfuseBurn, ResultOK
			_, err := l.Append(ctx, e)
			if err == nil {
				t.Fatalf("%s: accepted %+v", name, e)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), hex.EncodeToString(key)[:16]) {
				t.Fatalf("%s: error quotes the secret: %v", name, err)
			}
		}
	}
	for _, k := range []string{"flash_key", "key", "xts_key", "private", "private_key", "secret", "password", "pin", "seed", "token", "aes.key", "plaintext"} {
		_, err := l.Append(ctx, Entry{Operator: "alice", Event: EventEfuseBurn, Result: ResultOK, Details: Details{k: "x"}})
		if !errors.Is(err, ErrSecret) {
			t.Errorf("details key %q: %v, want ErrSecret", k, err)
		}
	}
	// Facts about keys are fine, including a digest of it.
	digest := sha256.Sum256(key)
	if _, err := l.Append(ctx, Entry{Operator: "alice", Event: EventEfuseBurn, Result: ResultOK, Details: Details{
		"key_purpose": "XTS_AES_128_KEY", "key_block": "BLOCK_KEY0", "key_digest": hex.EncodeToString(digest[:]),
		"secure_boot_key_revoked": "false", "image_sha256": strings.Repeat("ab", 32),
	}}); err != nil {
		t.Fatalf("facts about keys: %v", err)
	}
	writeRuns(t, l, 0, 1)
	l.Close(ctx)
	b, _ := os.ReadFile(NewLayout(dir).Log)
	for name, secret := range forms {
		probe := strings.TrimPrefix(secret, "0x")
		if len(probe) > 40 {
			probe = probe[:40]
		}
		if bytes.Contains(bytes.ToLower(b), bytes.ToLower([]byte(probe))) {
			t.Errorf("log holds the key in %s form", name)
		}
	}
}

func TestNormalizeMAC(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"24:0A:C4:00:01:02": "24:0a:c4:00:01:02",
		"24-0a-c4-00-01-02": "24:0a:c4:00:01:02",
		"240ac4000102":      "24:0a:c4:00:01:02",
		"240a.c400.0102":    "24:0a:c4:00:01:02",
		"24:0a:c4:00:01":    "",
		"24:0a:c4:00:01:0g": "",
	} {
		got, err := NormalizeMAC(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("NormalizeMAC(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// FuzzParseRecord: no panic; errors are FormatError with an offset inside
// the line, or FieldError; whatever parses re-encodes to the same bytes; and
// the hand-written codec agrees with encoding/json on every input.
func FuzzParseRecord(f *testing.F) {
	b, err := os.ReadFile("testdata/records.log")
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		f.Add(line)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"seq":0}`))
	f.Add([]byte("\xff"))
	f.Add([]byte(`{"seq":1,"time":"2026-11-21T10:00:00Z","station":"a","operator":"b","event":"c","id":"d","result":"ok","details":{"a":"b"},"prev":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		checkAgainstJSON(t, line)
		r, err := ParseRecord(line)
		if err != nil {
			var fe *FormatError
			var de *FieldError
			switch {
			case errors.As(err, &fe):
				if fe.Offset < 0 || fe.Offset > len(line) {
					t.Fatalf("offset %d outside a %d-byte line: %v", fe.Offset, len(line), err)
				}
			case errors.As(err, &de):
			default:
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		again, err := r.Marshal()
		if err != nil {
			t.Fatalf("parsed but does not marshal: %v", err)
		}
		if !bytes.Equal(again, line) {
			t.Fatalf("round trip:\n%q\n%q", line, again)
		}
	})
}
