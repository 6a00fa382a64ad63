package provisioning_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/loader"
	"fuseline/fixtures"
	"fuseline/fixtures/virtual"
	"fuseline/provisioning"
	"fuseline/provisioning/sim"
	"fuseline/provisioning/workspace"
	"fuseline/reports/evidence"
)

var _ provisioning.TargetKind = (*sim.Board)(nil)

// linkBoard is a board reached over a link: it hides what is behind it,
// as socket://, tcp:// and rfc2217:// do, and has what a fixtures.Link has
// (a read deadline, a baud rate).
type linkBoard struct{ b *sim.Board }

func (l linkBoard) Read(p []byte) (int, error)                       { return l.b.Read(p) }
func (l linkBoard) Write(p []byte) (int, error)                      { return l.b.Write(p) }
func (l linkBoard) Reset(ctx context.Context, m chip.BootMode) error { return l.b.Reset(ctx, m) }
func (l linkBoard) SetReadDeadline(t time.Time) error                { return l.b.SetReadDeadline(t) }
func (l linkBoard) SetBaud(baud int) error                           { return l.b.SetBaud(baud) }

func TestResolveTarget(t *testing.T) {
	t.Parallel()
	vb, err := sim.New(virtual.Config{Chip: chip.S3()})
	if err != nil {
		t.Fatal(err)
	}
	defer vb.Close()
	link := &fixtures.Board{} // what fuseline run opens for any port spec
	for _, tc := range []struct {
		name  string
		board provisioning.Board
		want  string // the station's word
		got   string
		err   string
	}{
		{"virtual board in-process", vb, "", evidence.TargetVirtual, ""},
		{"virtual board, station agrees", vb, evidence.TargetVirtual, evidence.TargetVirtual, ""},
		{"virtual board called a real one", vb, evidence.TargetBoard, "", `target "board" given for a board that is "virtual"`},
		{"a port: a real board unless told", link, "", evidence.TargetBoard, ""},
		{"a port, station knows it is a sim", link, evidence.TargetVirtual, evidence.TargetVirtual, ""},
		{"a port, station knows it is QEMU", link, evidence.TargetQEMU, evidence.TargetQEMU, ""},
		{"the virtual board behind a socket", linkBoard{vb}, "", evidence.TargetBoard, ""},
		{"unknown word", link, "emulator", "", `target "emulator" is none of`},
	} {
		got, err := provisioning.ResolveTarget(tc.want, tc.board)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %q, %v; want error %q", tc.name, got, err, tc.err)
			}
		case err != nil || got != tc.got:
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.got)
		}
	}
	for _, tc := range []struct{ current, model, want string }{
		{evidence.TargetBoard, "", evidence.TargetBoard},
		{evidence.TargetQEMU, "", evidence.TargetQEMU},
		{evidence.TargetBoard, loader.ModelVirtual, evidence.TargetVirtual},
		{evidence.TargetQEMU, loader.ModelVirtual, evidence.TargetVirtual},
		{evidence.TargetVirtual, loader.ModelVirtual, evidence.TargetVirtual},
	} {
		got, over := provisioning.LinkTarget(tc.current, tc.model)
		if got != tc.want || over != (tc.want != tc.current) {
			t.Errorf("LinkTarget(%q, %q) = %q, %v; want %q", tc.current, tc.model, got, over, tc.want)
		}
	}
	if got := provisioning.TargetOf(link); got != evidence.TargetBoard {
		t.Errorf("TargetOf(port) = %q", got)
	}
	if got := provisioning.TargetOf(vb); got != evidence.TargetVirtual {
		t.Errorf("TargetOf(virtual) = %q", got)
	}
}

// A run records how each check was established from its target: on the
// virtual board every board-side check is modelled and the host's own are
// computed. The same virtual board reached over a link says what it is
// when asked (loader.OpModelKind): the run records it as virtual whatever
// the station said, never as observed.
func TestRunRecordsEstablishment(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		overLink  bool
		target    string
		wantRec   string
		wantBoard string
	}{
		{"virtual in-process", false, "", evidence.TargetVirtual, evidence.Modelled},
		{"over a link, station says qemu", true, evidence.TargetQEMU, evidence.TargetVirtual, evidence.Modelled},
		{"over a link, nothing said", true, "", evidence.TargetVirtual, evidence.Modelled},
		{"over a link, station says board", true, evidence.TargetBoard, evidence.TargetVirtual, evidence.Modelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, chip.C3(), workspace.Options{})
			cfg := e.cfg()
			cfg.Target = tc.target
			var b provisioning.Board = e.b
			if tc.overLink {
				b = linkBoard{e.b}
			}
			res, err := provisioning.Run(ctxT(t), b, cfg)
			if err != nil || res.Record == nil {
				t.Fatalf("Run: %v", err)
			}
			rec := res.Record
			if rec.Schema != evidence.Schema || rec.Station.Target != tc.wantRec {
				t.Fatalf("record %s target %q, want %s %q", rec.Schema, rec.Station.Target, evidence.Schema, tc.wantRec)
			}
			seen := map[string]bool{}
			for _, c := range rec.Checks {
				want := tc.wantBoard
				if evidence.HostComputed(c.Kind()) {
					want = evidence.Computed
				}
				if c.Established != want {
					t.Errorf("%s established %q, want %q", c.Name, c.Established, want)
				}
				seen[c.Kind()] = true
			}
			for _, k := range []string{evidence.CheckManifestSignature, evidence.CheckSecureBoot, evidence.CheckFlashMD5, evidence.CheckBootLog,
				evidence.CheckLockdown, evidence.CheckKeyReadProtected, evidence.CheckOperator} {
				if !seen[k] {
					t.Errorf("no %s check recorded", k)
				}
			}
		})
	}
}
