package evidence

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
)

// Well-known bundle paths.
const (
	BundleKeyFile        = "station.pub"
	BundleCheckpointFile = "checkpoint"
	BundleEvidenceDir    = "evidence"
	BundleImagesDir      = "images"
	SignatureSuffix      = ".sig"
	ProofSuffix          = ".proof"
)

// DefaultBundleLimit bounds the bytes read from one bundle (images
// included) when no limit is given.
const DefaultBundleLimit = 1 << 30

// Bundle is the content of an evidence bundle: file bytes by slash-separated
// path relative to the bundle root ("evidence/X.json"). An evidence folder
// that holds no file is kept as its path with a trailing slash
// ("evidence/", nil data): a station's data directory before its first
// device, whose evidence is none rather than its other *.json files.
type Bundle map[string][]byte

// ReadBundleFS reads every regular file of fsys into a Bundle, reading at
// most limit bytes in all (0: DefaultBundleLimit).
func ReadBundleFS(fsys fs.FS, limit int64) (Bundle, error) {
	if limit <= 0 {
		limit = DefaultBundleLimit
	}
	b := Bundle{}
	var total int64
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == BundleEvidenceDir {
			b[p+"/"] = nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := fsys.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, limit-total+1))
		if err != nil {
			return fmt.Errorf("evidence: bundle %s: %w", p, err)
		}
		total += int64(len(data))
		if total > limit {
			return fmt.Errorf("evidence: bundle is larger than %d bytes (at %s)", limit, p)
		}
		b[p] = data
		return nil
	})
	if err != nil {
		return nil, err
	}
	b.dropFilledDirs()
	return b.rooted(), nil
}

// ReadBundleTar reads a tar stream (gzip-compressed or not) into a Bundle,
// reading at most limit bytes of content (0: DefaultBundleLimit). Entries
// other than regular files are ignored; names with ".." are refused.
func ReadBundleTar(r io.Reader, limit int64) (Bundle, error) {
	if limit <= 0 {
		limit = DefaultBundleLimit
	}
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("evidence: bundle: gzip: %w", err)
		}
		defer zr.Close()
		r = zr
	} else {
		r = br
	}
	tr := tar.NewReader(r)
	b := Bundle{}
	var total int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("evidence: bundle: tar: %w", err)
		}
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeDir {
			continue
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if !fs.ValidPath(name) {
			return nil, fmt.Errorf("evidence: bundle: tar entry %q is not a relative path inside the bundle", h.Name)
		}
		if h.Typeflag == tar.TypeDir {
			if path.Base(name) == BundleEvidenceDir {
				b[name+"/"] = nil
			}
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, limit-total+1))
		if err != nil {
			return nil, fmt.Errorf("evidence: bundle: tar entry %s: %w", name, err)
		}
		total += int64(len(data))
		if total > limit {
			return nil, fmt.Errorf("evidence: bundle is larger than %d bytes (at %s)", limit, name)
		}
		if _, dup := b[name]; dup {
			return nil, fmt.Errorf("evidence: bundle: tar holds %s twice", name)
		}
		b[name] = data
	}
	b.dropFilledDirs()
	return b.rooted(), nil
}

// dropFilledDirs removes the folder entries ("evidence/") of folders that
// hold a file: only an empty evidence folder needs saying.
func (b Bundle) dropFilledDirs() {
	for d := range b {
		if !strings.HasSuffix(d, "/") {
			continue
		}
		for p := range b {
			if p != d && strings.HasPrefix(p, d) {
				delete(b, d)
				break
			}
		}
	}
}

// rooted strips one top directory that every file shares, as
// `tar cf b.tar bundle/` makes, when the root holds no files.
func (b Bundle) rooted() Bundle {
	var top string
	for p := range b {
		dir, _, ok := strings.Cut(p, "/")
		if !ok || (top != "" && dir != top) {
			return b
		}
		top = dir
	}
	if top == "" || top == BundleEvidenceDir || top == BundleImagesDir {
		return b
	}
	out := make(Bundle, len(b))
	for p, data := range b {
		out[strings.TrimPrefix(p, top+"/")] = data
	}
	return out
}

// EvidenceFiles lists the bundle's evidence files, sorted, by the rule of
// EvidencePaths.
func (b Bundle) EvidenceFiles() []string {
	return EvidencePaths(slices.Collect(maps.Keys(b)))
}

// EvidencePaths picks the evidence files among the slash paths of a bundle
// or directory, sorted: the *.json files in an evidence/ folder when there
// are any or when an evidence/ folder is there at all (a path ending in
// "/": a station's data directory keeps its own state files, such as
// station-session.json and release-state/, beside evidence/, and an empty
// evidence/ means no evidence yet), else every *.json outside images/
// folders (a flat bundle). Bundles, `report verify`, `report lot` and
// `report oscal` all find evidence this one way.
func EvidencePaths(paths []string) []string {
	var all, inDir []string
	evidenceDir := false
	for _, p := range paths {
		if strings.HasSuffix(p, "/") {
			evidenceDir = evidenceDir || path.Base(p) == BundleEvidenceDir
			continue
		}
		dirs := "/" + path.Dir(p) + "/"
		if !strings.HasSuffix(p, ".json") || strings.Contains(dirs, "/"+BundleImagesDir+"/") {
			continue
		}
		all = append(all, p)
		if strings.Contains(dirs, "/"+BundleEvidenceDir+"/") {
			inDir = append(inDir, p)
		}
	}
	out := all
	if len(inDir) > 0 || evidenceDir {
		out = inDir
	}
	slices.Sort(out)
	return out
}

// VerifyOptions says what VerifyBundle trusts.
type VerifyOptions struct {
	// Key is the station key the auditor trusts (from the station's
	// published key, not from the bundle). Nil: use the bundle's station.pub
	// and say so in BundleReport.Warnings.
	Key *StationKey
	// Origin, when set, is the checkpoint origin the log must have.
	Origin string
}

// FileError is an error about one file of a bundle or evidence directory:
// for VerifyBundle, the first thing that does not check out.
type FileError struct {
	File string // bundle path of the file at fault
	Err  error
}

func (e *FileError) Error() string {
	return "evidence: " + e.File + ": " + strings.TrimPrefix(e.Err.Error(), "evidence: ")
}

func (e *FileError) Unwrap() error { return e.Err }

// BundleReport is what VerifyBundle checked.
type BundleReport struct {
	KeyFromBundle bool        // no key was given; the bundle's own key was used
	Checkpoint    *Checkpoint // the bundle's checkpoint; nil if it has none
	Devices       []DeviceResult
	// ImagesChecked lists image files whose SHA-256 matched every evidence
	// file that names them.
	ImagesChecked []string
	// AuditLog is what the check of the bundle's audit log found: every
	// result record matched to its evidence file and the reverse. Nil when
	// the bundle carries no audit log (NotVerified then says so).
	AuditLog *AuditLogResult
	// NotVerified lists what could not be checked, each as "what: not
	// verified, because …".
	NotVerified []string
	Warnings    []string
}

// DeviceResult is one evidence file that verified.
type DeviceResult struct {
	File      string
	ID, MAC   string
	Verdict   string
	LeafIndex int64
	TreeSize  int64
	// Schema and Target are the record's; Established counts its checks by
	// how they were established (Record.EstablishedCounts).
	Schema, Target, Established string
	// Modelled: some of its checks a model answered, or do not say how
	// they were established (not proof for a shipped device).
	Modelled bool
}

// VerifyBundle re-checks a bundle offline: for every evidence file its
// canonical form, its detached signature with the station key, its inclusion
// proof against a checkpoint signed by the station key, and the SHA-256 of
// every image file present that it names. When the bundle carries the
// station's audit log (a station's data directory does) it also checks the
// log against every station-signed checkpoint in the bundle and that each
// result record of the log has its evidence file (same SHA-256 and device)
// and each evidence file its result record: a removed evidence file is an
// *IncompleteError naming the device and record. A signature or proof
// without its evidence file is refused too. It returns the first failure as
// a *FileError.
func VerifyBundle(ctx context.Context, b Bundle, opts VerifyOptions) (*BundleReport, error) {
	rep := &BundleReport{}
	key := opts.Key
	if bundled, ok := b[BundleKeyFile]; ok {
		bk, err := ParseStationKey(bundled)
		switch {
		case key == nil && err != nil:
			return nil, &FileError{File: BundleKeyFile, Err: err}
		case key == nil:
			key = bk
		case err != nil || !bk.Equal(key):
			rep.Warnings = append(rep.Warnings, BundleKeyFile+" in the bundle is not the given station key; the given key was used")
		}
	} else if key == nil {
		return nil, &FileError{File: BundleKeyFile, Err: errors.New("missing, and no station key was given")}
	}
	if opts.Key == nil {
		rep.KeyFromBundle = true
		rep.Warnings = append(rep.Warnings, "only the bundle's own station key ("+BundleKeyFile+") was used: a forger can replace it; check against the station's published key with --key")
	}
	if msg, ok := b[BundleCheckpointFile]; ok {
		cp, err := openCheckpoint(msg, key, opts.Origin)
		if err != nil {
			return nil, &FileError{File: BundleCheckpointFile, Err: err}
		}
		rep.Checkpoint = cp
	}

	files := b.EvidenceFiles()
	_, haveLog := b[BundleAuditLogFile]
	if len(files) == 0 && !haveLog {
		return nil, &FileError{File: ".", Err: errors.New("the bundle holds no evidence files (*.json)")}
	}
	type claim struct {
		path, file string // image path in the bundle, evidence file naming it
		im         Image
	}
	var claims []claim
	var verified []verifiedFile
	encrypted := false
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("evidence: verify bundle: %w", err)
		}
		data := b[f]
		rec, err := Canonical(data)
		if err != nil {
			return nil, &FileError{File: f, Err: err}
		}
		sig, ok := b[f+SignatureSuffix]
		if !ok {
			return nil, &FileError{File: f + SignatureSuffix, Err: errors.New("missing: every evidence file needs its detached signature")}
		}
		if err := VerifySignature(data, sig, key); err != nil {
			if errors.Is(err, ErrBadSignature) {
				return nil, &FileError{File: f, Err: fmt.Errorf("signature in %s does not verify with the station key: the evidence or its signature was changed", f+SignatureSuffix)}
			}
			return nil, &FileError{File: f + SignatureSuffix, Err: err}
		}
		if rec.Station.KeyName != "" && key.Name != "" && rec.Station.KeyName != key.Name {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s names station key %q, verified with key %q", f, rec.Station.KeyName, key.Name))
		}
		pf := f + ProofSuffix
		praw, ok := b[pf]
		if !ok {
			return nil, &FileError{File: pf, Err: errors.New("missing: every evidence file needs its inclusion proof")}
		}
		var p InclusionProof
		if err := json.Unmarshal(praw, &p); err != nil {
			return nil, &FileError{File: pf, Err: err}
		}
		cp := rep.Checkpoint
		if len(p.Checkpoint) > 0 {
			if cp, err = openCheckpoint(p.Checkpoint, key, opts.Origin); err != nil {
				return nil, &FileError{File: pf, Err: err}
			}
		}
		if cp == nil {
			return nil, &FileError{File: pf, Err: fmt.Errorf("%w: no checkpoint in the proof and no %s in the bundle", ErrBadProof, BundleCheckpointFile)}
		}
		if err := VerifyInclusion(data, &p, cp); err != nil {
			return nil, &FileError{File: pf, Err: err}
		}
		modelled := false
		for _, c := range rec.Checks {
			how := rec.Establishment(c)
			modelled = modelled || how == Modelled || how == Unrecorded
		}
		rep.Devices = append(rep.Devices, DeviceResult{File: f, ID: rec.ID, MAC: rec.Device.MAC, Verdict: rec.Result.Verdict, LeafIndex: p.LeafIndex, TreeSize: p.TreeSize,
			Schema: rec.Schema, Target: rec.Station.Target, Established: rec.EstablishedCounts(), Modelled: modelled})
		verified = append(verified, verifiedFile{path: f, rec: rec, digest: SHA256(data).String(), checkpoint: p.Checkpoint})

		for _, im := range rec.Images {
			encrypted = encrypted || im.Encrypted
			if im.File == "" {
				continue
			}
			if path.Base(im.File) != im.File || !fs.ValidPath(im.File) {
				return nil, &FileError{File: f, Err: fmt.Errorf("image file name %q is not a plain file name", im.File)}
			}
			claims = append(claims, claim{BundleImagesDir + "/" + im.File, f, im})
		}
	}

	if err := checkAuditLog(ctx, b, key, opts.Origin, verified, rep); err != nil {
		return nil, err
	}
	if len(files) == 0 {
		// Only reached with the audit log, which has no result record
		// either (checkAuditLog named any as missing its evidence).
		rep.NotVerified = append(rep.NotVerified, "evidence files: none, because the station has recorded no device result yet (the audit log has no result record)")
	}
	// A signature or proof whose evidence file is gone is what deleting the
	// evidence alone leaves behind.
	for _, p := range slices.Sorted(maps.Keys(b)) {
		ev, isSig := strings.CutSuffix(p, ".json"+SignatureSuffix)
		if !isSig {
			var isProof bool
			if ev, isProof = strings.CutSuffix(p, ".json"+ProofSuffix); !isProof {
				continue
			}
		}
		if !slices.Contains(files, ev+".json") {
			return nil, &FileError{File: p, Err: fmt.Errorf("its evidence file %s.json is not in the bundle: the evidence was removed", ev)}
		}
	}

	named := map[string]bool{}
	sums := map[string]Digest{}
	for _, c := range claims {
		data, ok := b[c.path]
		if !ok {
			if !named[c.path] {
				rep.NotVerified = append(rep.NotVerified, fmt.Sprintf("%s: not verified, because the image file is not in the bundle", c.path))
			}
			named[c.path] = true
			continue
		}
		named[c.path] = true
		got, ok := sums[c.path]
		if !ok {
			got = sha256.Sum256(data)
			sums[c.path] = got
		}
		if got != c.im.PlaintextSHA256 {
			return nil, &FileError{File: c.path, Err: fmt.Errorf("SHA-256 is %s, %s says %s", got, c.file, c.im.PlaintextSHA256)}
		}
		if int64(len(data)) != c.im.Size {
			return nil, &FileError{File: c.path, Err: fmt.Errorf("is %d bytes, %s says %d", len(data), c.file, c.im.Size)}
		}
	}
	rep.ImagesChecked = slices.Sorted(maps.Keys(sums))
	if encrypted {
		rep.NotVerified = append(rep.NotVerified, "written_sha256 of encrypted images: not verified, because the ciphertext depends on the device key, which never leaves the station (the station checked it against the flash before lock: checks flash-md5)")
	}
	if n := modelledCount(rep.Devices); n > 0 {
		rep.NotVerified = append(rep.NotVerified, fmt.Sprintf("board-side checks of %d of %d evidence files: not observed on a board, because a model answered them "+
			"(virtual board or emulator) or the record does not say how they were established: not proof for a shipped device", n, len(rep.Devices)))
	}
	for p := range b {
		if strings.HasPrefix(p, BundleImagesDir+"/") && !named[p] {
			rep.Warnings = append(rep.Warnings, p+" is not named by any evidence file")
		}
	}
	slices.Sort(rep.Warnings)
	return rep, nil
}

func modelledCount(ds []DeviceResult) int {
	n := 0
	for _, d := range ds {
		if d.Modelled {
			n++
		}
	}
	return n
}

func openCheckpoint(msg []byte, key *StationKey, origin string) (*Checkpoint, error) {
	cp, err := OpenCheckpoint(msg, key)
	if err != nil {
		return nil, err
	}
	if origin != "" && cp.Origin != origin {
		return nil, fmt.Errorf("%w: checkpoint origin is %q, want %q", ErrBadProof, cp.Origin, origin)
	}
	return cp, nil
}
