package evidence_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fuseline/reports/evidence"
	"fuseline/reports/evidence/evidencetest"
)

func TestEstablish(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind, target, want string
	}{
		{evidence.CheckManifestSignature, evidence.TargetBoard, evidence.Computed},
		{evidence.CheckImageHash, evidence.TargetVirtual, evidence.Computed},
		{evidence.CheckSecureBoot, evidence.TargetQEMU, evidence.Computed},
		{evidence.CheckSecureVersion, evidence.TargetBoard, evidence.Computed},
		{evidence.CheckDecryptedSignature, evidence.TargetBoard, evidence.Computed},
		{evidence.CheckOperator, evidence.TargetBoard, evidence.Computed},
		{evidence.CheckKeyEscrow, evidence.TargetVirtual, evidence.Computed},
		{evidence.CheckFlashMD5, evidence.TargetBoard, evidence.Observed},
		{evidence.CheckFlashMD5, evidence.TargetVirtual, evidence.Modelled},
		{evidence.CheckFlashMD5, evidence.TargetQEMU, evidence.Modelled},
		{evidence.CheckBootLog, evidence.TargetBoard, evidence.Observed},
		{evidence.CheckBootLog, evidence.TargetVirtual, evidence.Modelled},
		{evidence.CheckBootLog, evidence.TargetQEMU, evidence.Modelled},
		{evidence.CheckEfuseReadback, evidence.TargetBoard, evidence.Observed},
		{evidence.CheckKeyReadProtected, evidence.TargetVirtual, evidence.Modelled},
		{evidence.CheckSPIProbe, evidence.TargetBoard, evidence.Observed},
		{evidence.CheckLockdown, evidence.TargetQEMU, evidence.Modelled},
		// A target the record does not name is never taken for silicon, and
		// a kind this version does not know never claims the host's certainty.
		{evidence.CheckBootLog, "", evidence.Modelled},
		{"new-kind", evidence.TargetVirtual, evidence.Modelled},
		{"new-kind", evidence.TargetBoard, evidence.Observed},
	} {
		if got := evidence.Establish(tc.kind, tc.target); got != tc.want {
			t.Errorf("Establish(%q, %q) = %q, want %q", tc.kind, tc.target, got, tc.want)
		}
	}
}

// Every check of a v2 record says how it was established, and a record of
// a virtual or QEMU target never says observed.
func TestEstablishedValidated(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		target string
		edit   func(r *evidence.Record)
		want   string // "" valid
	}{
		{"virtual lot as generated", evidence.TargetVirtual, func(*evidence.Record) {}, ""},
		{"board lot as generated", evidence.TargetBoard, func(*evidence.Record) {}, ""},
		{"empty", evidence.TargetVirtual, func(r *evidence.Record) { r.Checks[3].Established = "" }, "checks[3].established: is empty"},
		{"unknown", evidence.TargetBoard, func(r *evidence.Record) { r.Checks[0].Established = "seen" }, `checks[0].established: is "seen"`},
		{"observed on virtual", evidence.TargetVirtual, func(r *evidence.Record) { r.Checks[len(r.Checks)-1].Established = evidence.Observed },
			"established: is observed on target \"virtual\""},
		{"observed on qemu", evidence.TargetQEMU, func(r *evidence.Record) { r.Checks[len(r.Checks)-1].Established = evidence.Observed },
			"established: is observed on target \"qemu\""},
		{"v1 with an establishment", evidence.TargetVirtual, func(r *evidence.Record) {
			r.Schema = evidence.SchemaV1
			for i := range r.Checks {
				r.Checks[i].Established = ""
			}
			r.Checks[1].Established = evidence.Computed
		}, "checks[1].established: is \"computed\" in a fuseline.evidence/v1 record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := evidencetest.Board(evidencetest.LotOptions{Target: tc.target}, 0)
			tc.edit(r)
			_, err := evidence.Marshal(r)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if _, ok := errors.AsType[*evidence.FormatError](err); !ok || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Marshal: %v, want a *FormatError containing %q", err, tc.want)
			}
		})
	}
}

// Evidence written before schema v2 (testdata/v1, made by the v1 code)
// still reads, is still canonical byte for byte, and says what can be told
// of how its checks were established.
func TestV1RecordsStillRead(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob(filepath.Join("testdata", "v1", "*.json"))
	if len(files) != 4 {
		t.Fatalf("testdata/v1 holds %d records, want 4", len(files))
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := evidence.Canonical(b)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if r.Schema != evidence.SchemaV1 {
			t.Fatalf("%s: schema %s", p, r.Schema)
		}
		again, err := evidence.Marshal(r)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("%s: v1 record does not re-marshal to its signed bytes (%v)", p, err)
		}
		for _, c := range r.Checks {
			got := r.Establishment(c)
			want := evidence.Modelled // the v1 lot ran on target "virtual"
			if evidence.HostComputed(c.Kind()) {
				want = evidence.Computed
			}
			if got != want {
				t.Errorf("%s: %s established %q, want %q", p, c.Name, got, want)
			}
		}
		// On a v1 "board" target, a board-side check is unrecorded: v1
		// stations named some virtual boards "board".
		r.Station.Target = evidence.TargetBoard
		for _, c := range r.Checks {
			if !evidence.HostComputed(c.Kind()) && r.Establishment(c) != evidence.Unrecorded {
				t.Errorf("%s: v1 %s on a board target: %q, want %q", p, c.Name, r.Establishment(c), evidence.Unrecorded)
			}
		}
	}
}

// A bundle signed by the v1 code (testdata/v1/bundle.tar: four boards of
// evidencetest's lot, station seed 7, audit-record leaves) still verifies.
func TestV1BundleStillVerifies(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join("testdata", "v1", "bundle.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := evidence.ReadBundleTar(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := evidence.VerifyBundle(t.Context(), b, evidence.VerifyOptions{Key: evidencetest.NewStation(7).Key})
	if err != nil {
		t.Fatalf("a v1 bundle no longer verifies: %v", err)
	}
	if len(rep.Devices) != 4 {
		t.Fatalf("verified %d devices, want 4", len(rep.Devices))
	}
	// And an edit is still caught.
	name := b.EvidenceFiles()[0]
	b[name] = bytes.Replace(b[name], []byte(`"verified": true`), []byte(`"verified": false`), 1)
	if _, err := evidence.VerifyBundle(t.Context(), b, evidence.VerifyOptions{Key: evidencetest.NewStation(7).Key}); err == nil {
		t.Fatal("an edited v1 record verified")
	}
}

// WriteChecks lists every check, verified or not, with how it was
// established.
func TestWriteChecks(t *testing.T) {
	t.Parallel()
	for _, target := range []string{evidence.TargetVirtual, evidence.TargetBoard} {
		r := evidencetest.Board(evidencetest.LotOptions{Target: target}, 2)
		var b strings.Builder
		if err := evidence.WriteChecks(&b, r); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		lines := map[string]string{}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 1 {
				lines[f[0]] = l
			}
		}
		for _, c := range r.Checks {
			l, ok := lines[c.Name]
			if !ok {
				t.Fatalf("%s: %s missing:\n%s", target, c.Name, out)
			}
			outcome := "verified"
			if !c.Verified {
				outcome = "NOT verified"
			}
			if !strings.Contains(l, outcome) || !strings.Contains(l, evidence.EstablishedText(c.Established)) {
				t.Errorf("%s: line %q lacks %q and %q", target, l, outcome, evidence.EstablishedText(c.Established))
			}
		}
		boot := lines[evidence.CheckBootLog]
		want := map[string]string{evidence.TargetVirtual: "modelled: not proof for a shipped device", evidence.TargetBoard: "observed on the board"}[target]
		if !strings.Contains(boot, want) {
			t.Errorf("%s: boot-log line %q, want %q", target, boot, want)
		}
		if !strings.Contains(lines[evidence.CheckManifestSignature], "computed on the host") {
			t.Errorf("%s: manifest-signature line %q is not computed", target, lines[evidence.CheckManifestSignature])
		}
	}
}
