package evidence_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"testing/fstest"

	"fuseline/reports/evidence"
	"fuseline/reports/evidence/evidencetest"
)

func fstestMap(b evidence.Bundle) fstest.MapFS {
	m := fstest.MapFS{}
	for k, v := range b {
		m[k] = &fstest.MapFile{Data: v, Mode: 0o644}
	}
	return m
}

func seedTestdata(f *testing.F, glob string) {
	files, _ := filepath.Glob(filepath.Join("testdata", glob))
	if len(files) == 0 {
		f.Fatalf("no seeds in testdata/%s", glob)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParse: no panic; every error is a *FormatError with an offset or a
// field; what parses re-encodes to canonical bytes that parse the same.
func FuzzParse(f *testing.F) {
	seedTestdata(f, "*.json")
	seedTestdata(f, "v1/*.json")
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"schema":"fuseline.evidence/v1","id":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := evidence.Parse(b)
		if err != nil {
			fe, ok := errors.AsType[*evidence.FormatError](err)
			if !ok {
				t.Fatalf("error %v is %T, not *FormatError", err, err)
			}
			if fe.Offset < 0 && fe.Field == "" {
				t.Fatalf("error %v names neither an offset nor a field", err)
			}
			return
		}
		c, err := evidence.Marshal(r)
		if err != nil {
			t.Fatalf("parsed record does not marshal: %v", err)
		}
		r2, err := evidence.Canonical(c)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v", err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip differs")
		}
	})
}

// FuzzInclusionProof: a .proof file never panics the parser or the check.
func FuzzInclusionProof(f *testing.F) {
	b, err := evidencetest.NewStation(1).Bundle(evidencetest.Lot(evidencetest.LotOptions{N: 3}), evidencetest.BundleOptions{Noise: 2})
	if err != nil {
		f.Fatal(err)
	}
	for _, ev := range b.EvidenceFiles() {
		f.Add(b[ev+evidence.ProofSuffix])
	}
	f.Add([]byte(`{"leaf_index":0,"tree_size":1,"leaf_hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","root_hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","proof":[]}`))
	key := evidencetest.NewStation(1).Key
	cp, err := evidence.OpenCheckpoint(b[evidence.BundleCheckpointFile], key)
	if err != nil {
		f.Fatal(err)
	}
	data := b[b.EvidenceFiles()[0]]
	f.Fuzz(func(t *testing.T, pf []byte) {
		var p evidence.InclusionProof
		if err := json.Unmarshal(pf, &p); err != nil {
			return
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var p2 evidence.InclusionProof
		if err := json.Unmarshal(out, &p2); err != nil || !reflect.DeepEqual(p, p2) {
			t.Fatalf("proof does not round-trip: %v", err)
		}
		if len(p.Checkpoint) > 0 {
			evidence.OpenCheckpoint(p.Checkpoint, key)
		}
		if err := evidence.VerifyInclusion(data, &p, cp); err == nil && !bytes.Equal(pf, b[b.EvidenceFiles()[0]+evidence.ProofSuffix]) {
			// Another encoding of the same proof is fine; a different proof is not.
			var want evidence.InclusionProof
			json.Unmarshal(b[b.EvidenceFiles()[0]+evidence.ProofSuffix], &want)
			if p.LeafIndex != want.LeafIndex || !reflect.DeepEqual(p.Proof, want.Proof) {
				t.Fatalf("a different proof verified: %+v", p)
			}
		}
	})
}

// FuzzCheckpoint: checkpoint bodies and signed notes never panic, and what
// parses re-formats to the same body.
func FuzzCheckpoint(f *testing.F) {
	st := evidencetest.NewStation(1)
	var log evidencetest.Log
	log.Append([]byte("a"))
	cp, _ := st.Checkpoint(&log)
	f.Add(cp)
	f.Add([]byte("go.sum database tree\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		evidence.OpenCheckpoint(b, st.Key)
		evidence.OpenCheckpoint(b, &evidence.StationKey{Public: st.Key.Public})
		c, err := evidence.ParseCheckpoint(b)
		if err != nil || len(c.Extra) > 0 {
			return
		}
		if got := evidence.FormatCheckpoint(c.Origin, c.Size, c.Root); !bytes.Equal(got, b) {
			t.Fatalf("re-formats to %q", got)
		}
	})
}

// FuzzStationKey: key files never panic, and what parses round-trips.
func FuzzStationKey(f *testing.F) {
	st := evidencetest.NewStation(1)
	k, _ := st.Key.MarshalText()
	f.Add(k)
	pemKey, _ := (&evidence.StationKey{Public: st.Key.Public}).MarshalText()
	f.Add(pemKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := evidence.ParseStationKey(b)
		if err != nil {
			return
		}
		out, err := k.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		k2, err := evidence.ParseStationKey(out)
		if err != nil || !k2.Equal(k) || k2.Name != k.Name {
			t.Fatalf("does not round-trip: %v", err)
		}
	})
}

// FuzzReadBundleTar: tar streams never panic the reader, no entry escapes
// the bundle, and what reads verifies or fails with a *FileError.
func FuzzReadBundleTar(f *testing.F) {
	st := evidencetest.NewStation(1)
	b, err := st.Bundle(evidencetest.Lot(evidencetest.LotOptions{N: 2}), evidencetest.BundleOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tarOf(f, b, "", false))
	f.Add(tarOf(f, b, "bundle/", true))
	f.Add(tarOf(f, evidence.Bundle{"../x": []byte("y")}, "", false))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := evidence.ReadBundleTar(bytes.NewReader(data), 1<<20)
		if err != nil {
			return
		}
		for name := range got {
			if !fs.ValidPath(name) {
				t.Fatalf("entry %q escapes the bundle", name)
			}
		}
		if _, err := evidence.VerifyBundle(t.Context(), got, evidence.VerifyOptions{Key: st.Key}); err != nil {
			if _, ok := errors.AsType[*evidence.FileError](err); !ok {
				t.Fatalf("error %v is not a *FileError", err)
			}
		}
	})
}

func tarOf(tb testing.TB, b evidence.Bundle, prefix string, gz bool) []byte {
	tb.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	for _, name := range slices.Sorted(maps.Keys(b)) {
		if err := tw.WriteHeader(&tar.Header{Name: prefix + name, Mode: 0o644, Size: int64(len(b[name])), Typeflag: tar.TypeReg}); err != nil {
			tb.Fatal(err)
		}
		tw.Write(b[name])
	}
	tw.Close()
	if zw != nil {
		zw.Close()
	}
	return buf.Bytes()
}
