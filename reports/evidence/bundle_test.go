package evidence_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"fuseline/reports/evidence"
	"fuseline/reports/evidence/evidencetest"

	"golang.org/x/mod/sumdb/tlog"
)

func testBundle(t *testing.T, n int, images bool) (evidence.Bundle, *evidencetest.Station) {
	t.Helper()
	st := evidencetest.NewStation(1)
	b, err := st.Bundle(evidencetest.Lot(evidencetest.LotOptions{N: n}), evidencetest.BundleOptions{Images: images, Noise: 3})
	if err != nil {
		t.Fatal(err)
	}
	return b, st
}

func TestVerifyBundleOK(t *testing.T) {
	t.Parallel()
	b, st := testBundle(t, 12, true)
	rep, err := evidence.VerifyBundle(t.Context(), b, evidence.VerifyOptions{Key: st.Key, Origin: evidencetest.Origin})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Devices) != 12 || rep.KeyFromBundle {
		t.Errorf("devices %d, key from bundle %v", len(rep.Devices), rep.KeyFromBundle)
	}
	if want := []string{"images/app.bin", "images/bootloader.bin", "images/partition-table.bin"}; !slices.Equal(rep.ImagesChecked, want) {
		t.Errorf("images checked %v", rep.ImagesChecked)
	}
	if len(rep.Warnings) != 0 {
		t.Errorf("warnings %v", rep.Warnings)
	}
	// Without an audit log, completeness is "not verified, because …".
	// The lot ran on the virtual board: that its board-side checks were
	// modelled is said too.
	if len(rep.NotVerified) != 3 || !strings.Contains(rep.NotVerified[1], "written_sha256") || !strings.Contains(rep.NotVerified[0], "no audit.log") || rep.AuditLog != nil ||
		!strings.Contains(rep.NotVerified[2], "board-side checks of 12 of 12 evidence files: not observed on a board") {
		t.Errorf("not verified %v", rep.NotVerified)
	}
	if d := rep.Devices[0]; d.Schema != evidence.Schema || d.Target != evidence.TargetVirtual || !d.Modelled || !strings.Contains(d.Established, " modelled") {
		t.Errorf("device result %+v", d)
	}
	if rep.Checkpoint == nil || rep.Checkpoint.Size != 12*4 {
		t.Errorf("checkpoint %+v", rep.Checkpoint)
	}

	// Without a given key: the bundle's key is used, and that is said.
	rep, err = evidence.VerifyBundle(t.Context(), b, evidence.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.KeyFromBundle || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "--key") {
		t.Errorf("bundled-key warning missing: %v", rep.Warnings)
	}

	// Without images: the image hashes are "not verified, because …", not passed.
	b2, _ := testBundle(t, 3, false)
	rep, err = evidence.VerifyBundle(t.Context(), b2, evidence.VerifyOptions{Key: st.Key})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.ImagesChecked) != 0 || len(rep.NotVerified) != 6 {
		t.Errorf("checked %v, not verified %v", rep.ImagesChecked, rep.NotVerified)
	}

	// A lot of real boards: observed, nothing modelled to report.
	b3, err := st.Bundle(evidencetest.Lot(evidencetest.LotOptions{N: 2, Target: evidence.TargetBoard}), evidencetest.BundleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = evidence.VerifyBundle(t.Context(), b3, evidence.VerifyOptions{Key: st.Key})
	if err != nil {
		t.Fatal(err)
	}
	for _, nv := range rep.NotVerified {
		if strings.Contains(nv, "board-side checks") {
			t.Errorf("real boards reported as modelled: %s", nv)
		}
	}
	if d := rep.Devices[0]; d.Modelled || !strings.Contains(d.Established, " observed") {
		t.Errorf("device result %+v", d)
	}
}

// TestVerifyBundleCatches is the auditor's table: each way a bundle can be
// wrong, and the file the error must name.
func TestVerifyBundleCatches(t *testing.T) {
	t.Parallel()
	const ev = "evidence/3c6105000000-20261121T080000Z.json"
	const ev1 = "evidence/3c6105000001-20261121T080135Z.json"
	other := evidencetest.NewStation(9)
	tests := []struct {
		name   string
		change func(t *testing.T, b evidence.Bundle)
		key    *evidence.StationKey // nil: the right key
		file   string               // the file the error names
		is     error                // the sentinel it wraps, if any
	}{
		{"tampered evidence", func(t *testing.T, b evidence.Bundle) {
			b[ev] = bytes.Replace(b[ev], []byte(`"id": "op-0040"`), []byte(`"id": "op-0666"`), 1)
		}, nil, ev, nil},
		{"tampered verdict", func(t *testing.T, b evidence.Bundle) {
			r, _ := evidence.Parse(b[ev1])
			r.Operator.Name = "Someone Else"
			b[ev1], _ = evidence.Marshal(r)
		}, nil, ev1, nil},
		{"reformatted evidence", func(t *testing.T, b evidence.Bundle) {
			b[ev] = bytes.ReplaceAll(b[ev], []byte("  "), []byte("\t"))
		}, nil, ev, nil},
		{"bad signature", func(t *testing.T, b evidence.Bundle) {
			b[ev+".sig"] = b[ev1+".sig"]
		}, nil, ev, nil},
		{"signature by another key", func(t *testing.T, b evidence.Bundle) {
			_, b[ev+".sig"], _ = evidence.Sign(mustParse(t, b[ev]), other.Priv)
		}, nil, ev, nil},
		{"corrupt signature file", func(t *testing.T, b evidence.Bundle) { b[ev+".sig"] = []byte("####\n") }, nil, ev + ".sig", nil},
		{"missing signature", func(t *testing.T, b evidence.Bundle) { delete(b, ev+".sig") }, nil, ev + ".sig", nil},
		{"missing proof", func(t *testing.T, b evidence.Bundle) { delete(b, ev+".proof") }, nil, ev + ".proof", nil},
		{"swapped proofs", func(t *testing.T, b evidence.Bundle) {
			b[ev+".proof"], b[ev1+".proof"] = b[ev1+".proof"], b[ev+".proof"]
		}, nil, ev + ".proof", evidence.ErrBadProof},
		{"wrong proof hash", func(t *testing.T, b evidence.Bundle) {
			editProof(t, b, ev, func(p *evidence.InclusionProof) { p.Proof[0][0] ^= 1 })
		}, nil, ev + ".proof", evidence.ErrBadProof},
		{"wrong leaf index", func(t *testing.T, b evidence.Bundle) {
			editProof(t, b, ev, func(p *evidence.InclusionProof) { p.LeafIndex++ })
		}, nil, ev + ".proof", evidence.ErrBadProof},
		{"short proof", func(t *testing.T, b evidence.Bundle) {
			editProof(t, b, ev, func(p *evidence.InclusionProof) { p.Proof = p.Proof[1:] })
		}, nil, ev + ".proof", evidence.ErrBadProof},
		{"proof for another tree", func(t *testing.T, b evidence.Bundle) {
			editProof(t, b, ev, func(p *evidence.InclusionProof) { p.TreeSize--; p.RootHash = tlog.Hash{1} })
		}, nil, ev + ".proof", evidence.ErrBadProof},
		{"proof with a forged checkpoint", func(t *testing.T, b evidence.Bundle) {
			// A proof for a fake tree holding only this record, signed by another key.
			data := b[ev]
			var log evidencetest.Log
			log.Append(data)
			p, _ := log.Prove(0, data)
			p.Checkpoint, _ = other.Checkpoint(&log)
			pj, _ := json.Marshal(p)
			b[ev+".proof"] = pj
		}, nil, ev + ".proof", evidence.ErrBadProof},
		{"garbage proof", func(t *testing.T, b evidence.Bundle) { b[ev+".proof"] = []byte("{") }, nil, ev + ".proof", nil},
		{"checkpoint by another key", func(t *testing.T, b evidence.Bundle) {
			var log evidencetest.Log
			log.Append([]byte("x"))
			b["checkpoint"], _ = other.Checkpoint(&log)
		}, nil, "checkpoint", evidence.ErrBadProof},
		{"no checkpoint", func(t *testing.T, b evidence.Bundle) { delete(b, "checkpoint") }, nil, "evidence/3c6105000000-20261121T080000Z.json.proof", evidence.ErrBadProof},
		{"wrong image hash", func(t *testing.T, b evidence.Bundle) {
			img := bytes.Clone(b["images/app.bin"])
			img[100] ^= 0xff
			b["images/app.bin"] = img
		}, nil, "images/app.bin", nil},
		{"truncated image", func(t *testing.T, b evidence.Bundle) {
			b["images/bootloader.bin"] = b["images/bootloader.bin"][:100]
		}, nil, "images/bootloader.bin", nil},
		{"auditor's key differs", func(t *testing.T, b evidence.Bundle) {}, other.Key, "checkpoint", evidence.ErrBadProof},
		{"auditor's key differs, no checkpoint file", func(t *testing.T, b evidence.Bundle) { delete(b, "checkpoint") }, other.Key, ev, nil},
		{"bundle key replaced, no --key", func(t *testing.T, b evidence.Bundle) {
			b["station.pub"], _ = other.Key.MarshalText()
		}, &evidence.StationKey{}, "checkpoint", evidence.ErrBadProof},
		{"bad bundle key", func(t *testing.T, b evidence.Bundle) { b["station.pub"] = []byte("nope") }, &evidence.StationKey{}, "station.pub", nil},
		{"no evidence", func(t *testing.T, b evidence.Bundle) {
			for k := range b {
				if strings.HasPrefix(k, "evidence/") {
					delete(b, k)
				}
			}
		}, nil, ".", nil},
		{"invalid evidence", func(t *testing.T, b evidence.Bundle) {
			b["evidence/notes.json"] = []byte(`{"hello": 1}`)
		}, nil, "evidence/notes.json", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, st := testBundle(t, 4, true)
			tc.change(t, b)
			opts := evidence.VerifyOptions{Key: st.Key}
			switch {
			case tc.key == nil:
			case tc.key.Public == nil:
				opts.Key = nil // use the bundle's key
			default:
				opts.Key = tc.key
			}
			_, err := evidence.VerifyBundle(t.Context(), b, opts)
			t.Log(err)
			fe, ok := errors.AsType[*evidence.FileError](err)
			if !ok {
				t.Fatalf("error %v, want a *FileError", err)
			}
			if fe.File != tc.file {
				t.Errorf("names %q, want %q (%v)", fe.File, tc.file, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), tc.file) {
				t.Errorf("message %q is not one line naming the file", err)
			}
		})
	}
}

func mustParse(t *testing.T, b []byte) *evidence.Record {
	t.Helper()
	r, err := evidence.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func editProof(t *testing.T, b evidence.Bundle, ev string, f func(*evidence.InclusionProof)) {
	t.Helper()
	var p evidence.InclusionProof
	if err := json.Unmarshal(b[ev+".proof"], &p); err != nil {
		t.Fatal(err)
	}
	f(&p)
	pj, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	b[ev+".proof"] = pj
}

// TestVerifyBundleAuditLeaves: the log holds audit records that name the
// evidence by digest (the reports/audit way), and the proof carries the leaf.
func TestVerifyBundleAuditLeaves(t *testing.T) {
	t.Parallel()
	st := evidencetest.NewStation(1)
	recs := evidencetest.Lot(evidencetest.LotOptions{N: 5})
	const ev = "evidence/3c6105000001-20261121T080135Z.json"
	tests := []struct {
		name   string
		change func(t *testing.T, b evidence.Bundle)
		ok     bool
	}{
		{"ok", func(*testing.T, evidence.Bundle) {}, true},
		{"leaf record edited", func(t *testing.T, b evidence.Bundle) {
			editProof(t, b, ev, func(p *evidence.InclusionProof) {
				p.Leaf = bytes.Replace(p.Leaf, []byte(`"result":"ok"`), []byte(`"result":"fail"`), 1)
			})
		}, false},
		{"leaf names other evidence", func(t *testing.T, b evidence.Bundle) {
			// Another evidence file's proof: a valid leaf, for other bytes.
			b[ev+".proof"] = b["evidence/3c6105000002-20261121T080310Z.json.proof"]
		}, false},
		{"leaf dropped", func(t *testing.T, b evidence.Bundle) {
			editProof(t, b, ev, func(p *evidence.InclusionProof) { p.Leaf = nil })
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := st.Bundle(recs, evidencetest.BundleOptions{AuditLeaves: true, Noise: 2})
			if err != nil {
				t.Fatal(err)
			}
			tc.change(t, b)
			_, err = evidence.VerifyBundle(t.Context(), b, evidence.VerifyOptions{Key: st.Key})
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			t.Log(err)
			if fe, ok := errors.AsType[*evidence.FileError](err); !ok || fe.File != ev+".proof" || !errors.Is(err, evidence.ErrBadProof) {
				t.Errorf("error %v, want ErrBadProof naming %s.proof", err, ev)
			}
		})
	}
	// A leaf that names this evidence but another device is refused too.
	b, _ := st.Bundle(recs, evidencetest.BundleOptions{AuditLeaves: true})
	var p evidence.InclusionProof
	json.Unmarshal(b[ev+".proof"], &p)
	p.Leaf = bytes.Replace(p.Leaf, []byte(`"device":"3c:61:05:00:00:01"`), []byte(`"device":"3c:61:05:00:00:09"`), 1)
	p.LeafHash = tlog.RecordHash(p.Leaf)
	cp, _ := evidence.OpenCheckpoint(b["checkpoint"], st.Key)
	if err := evidence.VerifyInclusion(b[ev], &p, cp); err == nil || !strings.Contains(err.Error(), "for device 3c:61:05:00:00:09") {
		t.Errorf("device mismatch: %v", err)
	}
}

func TestVerifyBundleContext(t *testing.T) {
	t.Parallel()
	b, st := testBundle(t, 2, false)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := evidence.VerifyBundle(ctx, b, evidence.VerifyOptions{Key: st.Key}); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

func writeTar(t *testing.T, b evidence.Bundle, prefix string, gz bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w = &buf
	var zw *gzip.Writer
	tw := tar.NewWriter(w)
	if gz {
		zw = gzip.NewWriter(w)
		tw = tar.NewWriter(zw)
	}
	for _, name := range slices.Sorted(maps.Keys(b)) {
		if err := tw.WriteHeader(&tar.Header{Name: prefix + name, Mode: 0o644, Size: int64(len(b[name])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b[name])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		zw.Close()
	}
	return buf.Bytes()
}

func TestReadBundle(t *testing.T) {
	t.Parallel()
	b, st := testBundle(t, 3, true)
	for _, tc := range []struct {
		name   string
		prefix string
		gz     bool
	}{{"plain", "", false}, {"dot", "./", false}, {"top dir", "bundle-lot7/", false}, {"gzip", "bundle/", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := evidence.ReadBundleTar(bytes.NewReader(writeTar(t, b, tc.prefix, tc.gz)), 0)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.EqualFunc(got, b, bytes.Equal) {
				t.Errorf("files %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(b)))
			}
			if _, err := evidence.VerifyBundle(t.Context(), got, evidence.VerifyOptions{Key: st.Key}); err != nil {
				t.Error(err)
			}
		})
	}
	t.Run("dir", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		for name, data := range b {
			p := filepath.Join(dir, "lot7", filepath.FromSlash(name))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := evidence.ReadBundleFS(os.DirFS(dir), 0)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.EqualFunc(got, b, bytes.Equal) {
			t.Errorf("files %v", slices.Sorted(maps.Keys(got)))
		}
		if _, err := evidence.ReadBundleFS(os.DirFS(dir), 1000); err == nil {
			t.Error("limit not enforced")
		}
	})
	t.Run("escape", func(t *testing.T) {
		t.Parallel()
		bad := writeTar(t, evidence.Bundle{"../etc/passwd": []byte("x")}, "", false)
		if _, err := evidence.ReadBundleTar(bytes.NewReader(bad), 0); err == nil {
			t.Error("a path outside the bundle was accepted")
		}
		if _, err := evidence.ReadBundleTar(bytes.NewReader(writeTar(t, b, "", false)), 1000); err == nil {
			t.Error("limit not enforced")
		}
	})
}

func TestReadFiles(t *testing.T) {
	t.Parallel()
	b, _ := testBundle(t, 5, true)
	// A station's data directory: its state files are not evidence.
	b["station-session.json"] = []byte(`{"slot":"1"}`)
	b["release-state/release-state.json"] = []byte(`{}`)
	fsys := fstestMap(b)
	files, err := evidence.ReadFiles(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 5 || files[0].Record.Device.MAC != "3c:61:05:00:00:00" {
		t.Fatalf("read %d files", len(files))
	}
	b["evidence/zz.json"] = []byte(`{"schema":"other"}`)
	_, err = evidence.ReadFiles(fstestMap(b))
	if fe, ok := errors.AsType[*evidence.FileError](err); !ok || fe.File != "evidence/zz.json" {
		t.Errorf("error %v does not name the bad file", err)
	}
}

// A station's data directory used as a bundle holds its own state files
// (station-session.json, release-state/…json, journal/…) beside evidence/:
// only evidence/ is evidence. A flat bundle still counts every *.json.
func TestEvidenceFilesLayout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		b    evidence.Bundle
		want []string
	}{
		{"data directory", evidence.Bundle{"evidence/a.json": nil, "evidence/a.json.sig": nil, "station-session.json": nil,
			"release-state/release-state.json": nil, "images/app.json": nil}, []string{"evidence/a.json"}},
		{"flat", evidence.Bundle{"b.json": nil, "a.json": nil, "images/x.json": nil, "station.pub": nil}, []string{"a.json", "b.json"}},
		// An empty evidence/ is no evidence yet, not the state files beside it.
		{"data directory before its first device", evidence.Bundle{"evidence/": nil, "station-session.json": nil, "audit.log": nil}, nil},
	} {
		if got := tc.b.EvidenceFiles(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: EvidenceFiles() = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestReadBundleTarEmptyEvidence: a tar of a data directory keeps its empty
// evidence/ folder, so it has no evidence either.
func TestReadBundleTarEmptyEvidence(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "data/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "data/evidence/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "data/station-session.json", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("{}"))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := evidence.ReadBundleTar(&buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.EvidenceFiles(); len(got) != 0 {
		t.Fatalf("EvidenceFiles() = %v, want none (bundle %v)", got, slices.Sorted(maps.Keys(b)))
	}
}
