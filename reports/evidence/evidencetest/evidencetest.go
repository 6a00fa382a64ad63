// Package evidencetest makes synthetic evidence for tests: a lot of N boards
// with passes, failures and refusals, a deterministic station key, an
// in-memory audit log (golang.org/x/mod/sumdb/tlog) and signed bundles, so
// the report packages can be tested from evidence alone, the way an auditor
// gets it (reports/evidence package doc, "Bundle").
package evidencetest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"fuseline/reports/evidence"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// LotOptions configures a synthetic lot. The zero value is a lot of 10.
type LotOptions struct {
	N     int       // boards; 0: 10
	Lot   string    // lot name; "": "LOT-TEST-01"
	Start time.Time // first board's start; zero: 2026-11-21T08:00:00Z
	Seed  uint64    // varies durations and keys; same seed, same lot
	// Target is the station's target for every board (evidence.TargetBoard,
	// TargetVirtual or TargetQEMU); "": TargetVirtual. Board-side checks
	// are observed on a real board and modelled otherwise.
	Target string
}

func (o LotOptions) withDefaults() LotOptions {
	if o.N == 0 {
		o.N = 10
	}
	if o.Lot == "" {
		o.Lot = "LOT-TEST-01"
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	}
	if o.Target == "" {
		o.Target = evidence.TargetVirtual
	}
	return o
}

// Outcome of board i in a synthetic lot: board 3, 13, … fail the flash MD5
// check; 6, 16, … lose the link while flashing; 8, 18, … are refused (a
// foreign key digest); the rest pass, and every third passing board has a
// fixture without an SPI probe (a PASS with a check not verified).
func Outcome(i int) (verdict, code string) {
	switch i % 10 {
	case 3:
		return evidence.FAIL, "verify-md5"
	case 6:
		return evidence.FAIL, "link-lost"
	case 8:
		return evidence.REFUSED, "efuse-conflict"
	}
	return evidence.PASS, ""
}

// Lot returns the records of a synthetic lot, in run order.
func Lot(o LotOptions) []*evidence.Record {
	o = o.withDefaults()
	out := make([]*evidence.Record, o.N)
	for i := range out {
		out[i] = Board(o, i)
	}
	return out
}

// Images returns the synthetic release's image files by name.
func Images() map[string][]byte {
	mk := func(name string, n int) []byte {
		b := make([]byte, n)
		r := rand.New(rand.NewPCG(uint64(len(name)), uint64(n)))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		copy(b, name)
		return b
	}
	return map[string][]byte{
		"bootloader.bin":      mk("bootloader.bin", 3*1024),
		"partition-table.bin": mk("partition-table.bin", 3*1024),
		"app.bin":             mk("app.bin", 12*1024),
	}
}

var chips = []struct{ name, rev string }{{"ESP32-S3", "v0.2"}, {"ESP32-C3", "v0.4"}, {"ESP32", "v3.0"}}

// Board returns the record of board i of the lot o.
func Board(o LotOptions, i int) *evidence.Record {
	o = o.withDefaults()
	rng := rand.New(rand.NewPCG(o.Seed, uint64(i)))
	verdict, code := Outcome(i)
	c := chips[i%len(chips)]
	mac := fmt.Sprintf("3c:61:05:%02x:%02x:%02x", byte(o.Seed), byte(i>>8), byte(i))
	start := o.Start.Add(time.Duration(i) * 95 * time.Second)
	images := Images()

	r := &evidence.Record{
		Schema: evidence.Schema,
		ID:     evidence.NewID(mac, start),
		Lot:    o.Lot,
		Device: evidence.Device{MAC: mac, Chip: c.name, Revision: c.rev, FlashID: "0xef4018", SerialNo: fmt.Sprintf("SN%06d", 1000+i)},
		Station: evidence.Station{
			ID: "line1-st3", Slot: fmt.Sprintf("slot%d", i%4), KeyName: StationName,
			Software: "fuseline 0.1.0-test", Target: o.Target,
		},
		Operator: evidence.Operator{ID: fmt.Sprintf("op-%04d", 40+i%2), Name: []string{"A. Operator", "B. Operator"}[i%2]},
		Recipe:   evidence.Recipe{Name: "widget-prod", SHA256: evidence.SHA256([]byte("recipe widget-prod"))},
		Release: evidence.Release{Product: "widget", Version: "1.4.2", SecureVersion: 3,
			ManifestSHA256: evidence.SHA256([]byte("manifest widget 1.4.2"))},
		Images: []evidence.Image{},
	}
	sbDigest := evidence.SHA256([]byte("secure boot key 0"))

	// The run: intake, connect, plan, burn-keys, flash, verify, lock, record.
	names := []string{"intake", "connect", "plan", "burn-keys", "flash", "verify", "lock", "record"}
	base := []time.Duration{200 * time.Millisecond, 1500 * time.Millisecond, 100 * time.Millisecond,
		2 * time.Second, 38 * time.Second, 9 * time.Second, 1500 * time.Millisecond, 150 * time.Millisecond}
	stopAt, stopWhy := len(names), ""
	switch code {
	case "verify-md5":
		stopAt, stopWhy = 5, "flash MD5 of app@0x10000 differs from the expected ciphertext"
	case "link-lost":
		stopAt, stopWhy = 4, "link lost while writing app@0x10000 (no answer to FLASH_DATA after 3 retries)"
	case "efuse-conflict":
		stopAt, stopWhy = 2, "BLOCK_KEY1 holds a Secure Boot digest that is not one of the recipe's keys"
		if c.name == "ESP32" {
			stopWhy = "BLOCK2 holds a Secure Boot digest that is not one of the recipe's keys"
		}
	}
	t := start
	for k, n := range names {
		d := base[k] + time.Duration(rng.IntN(int(base[k]/4)+1))
		s := evidence.Step{Name: n, Start: t, End: t.Add(d), Duration: evidence.Duration(d), Result: evidence.StepOK}
		switch {
		case k == stopAt:
			s.Result, s.Error = evidence.StepFailed, stopWhy
			if code == "efuse-conflict" {
				s.Result, s.Error = evidence.StepFailed, "refused: "+stopWhy
			}
		case k > stopAt:
			d = 0
			s.End, s.Duration = t, 0
			s.Result, s.Error = evidence.StepSkipped, "not run: "+names[stopAt]+" failed"
		}
		r.Steps = append(r.Steps, s)
		t = t.Add(d)
	}
	r.Timing = evidence.Timing{Start: start, End: t, Duration: evidence.Duration(t.Sub(start)), Baud: 921600, BytesOnWire: 18 * 1024}

	order := []struct {
		role, file string
		off        uint32
	}{
		{"bootloader", "bootloader.bin", 0x0}, {"partition-table", "partition-table.bin", 0x8000}, {"app", "app.bin", 0x10000},
	}
	if c.name == "ESP32" {
		order[0].off = 0x1000
	}
	if code != "efuse-conflict" {
		for _, im := range order {
			data := images[im.file]
			ct := sha256.Sum256(append([]byte(mac), data...)) // stands in for the per-device ciphertext
			e := evidence.Image{Role: im.role, File: im.file, Offset: im.off, Size: int64(len(data)),
				PlaintextSHA256: evidence.SHA256(data), WrittenSHA256: ct, Encrypted: true, WriteMode: "host-encrypted",
				SignatureKeyDigests: []evidence.Digest{}}
			if im.role != "partition-table" {
				e.SignatureKeyDigests = []evidence.Digest{sbDigest}
			}
			r.Images = append(r.Images, e)
		}
	}

	// eFuses: blank before; keys and lockdown after (unless it stopped early).
	var key [32]byte
	for k := range key {
		key[k] = byte(rng.Uint32())
	}
	beforeFields := map[string]uint64{"WR_DIS": 0, "RD_DIS": 0, "SPI_BOOT_CRYPT_CNT": 0, "SECURE_BOOT_EN": 0, "SECURE_VERSION": 0, "DIS_PAD_JTAG": 0}
	var beforeKeys, afterKeys []evidence.KeyMaterial
	afterFields := map[string]uint64{}
	if c.name == "ESP32" {
		beforeFields = map[string]uint64{"WR_DIS": 0, "RD_DIS": 0, "FLASH_CRYPT_CNT": 0, "ABS_DONE_1": 0, "JTAG_DISABLE": 0, "UART_DOWNLOAD_DIS": 0}
		beforeKeys = []evidence.KeyMaterial{{Block: "BLOCK1", Purpose: "FLASH_ENCRYPTION", Data: make([]byte, 32)}, {Block: "BLOCK2", Purpose: "SECURE_BOOT_V2", Data: make([]byte, 32)}}
		if code == "efuse-conflict" {
			foreign := sha256.Sum256([]byte("someone else's key"))
			beforeKeys[1] = evidence.KeyMaterial{Block: "BLOCK2", Purpose: "SECURE_BOOT_V2", WriteProtected: true, Data: foreign[:]}
		}
		for k, v := range beforeFields {
			afterFields[k] = v
		}
		afterKeys = beforeKeys
		if stopAt > 3 {
			afterFields["RD_DIS"] = 0x1
			afterKeys = []evidence.KeyMaterial{
				{Block: "BLOCK1", Purpose: "FLASH_ENCRYPTION", ReadProtected: true, WriteProtected: true, Data: key[:], Source: evidence.SourceBurned},
				{Block: "BLOCK2", Purpose: "SECURE_BOOT_V2", WriteProtected: true, Data: sbDigest[:]},
			}
		}
		if verdict == evidence.PASS {
			afterFields["FLASH_CRYPT_CNT"], afterFields["ABS_DONE_1"], afterFields["JTAG_DISABLE"], afterFields["UART_DOWNLOAD_DIS"] = 0x7f, 1, 1, 1
			afterFields["WR_DIS"] = 0x0180
		}
	} else {
		for k := 0; k < 6; k++ {
			beforeKeys = append(beforeKeys, evidence.KeyMaterial{Block: fmt.Sprintf("BLOCK_KEY%d", k), Purpose: "USER", Data: make([]byte, 32)})
		}
		if code == "efuse-conflict" {
			foreign := sha256.Sum256([]byte("someone else's key"))
			beforeKeys[1] = evidence.KeyMaterial{Block: "BLOCK_KEY1", Purpose: "SECURE_BOOT_DIGEST0", WriteProtected: true, Data: foreign[:]}
			beforeFields["KEY_PURPOSE_1"] = 9
		}
		for k, v := range beforeFields {
			afterFields[k] = v
		}
		afterKeys = append([]evidence.KeyMaterial(nil), beforeKeys...)
		if stopAt > 3 {
			afterFields["KEY_PURPOSE_0"], afterFields["KEY_PURPOSE_1"], afterFields["RD_DIS"] = 4, 9, 0x1
			afterKeys[0] = evidence.KeyMaterial{Block: "BLOCK_KEY0", Purpose: "XTS_AES_128_KEY", ReadProtected: true, WriteProtected: true, Data: key[:], Source: evidence.SourceBurned}
			afterKeys[1] = evidence.KeyMaterial{Block: "BLOCK_KEY1", Purpose: "SECURE_BOOT_DIGEST0", WriteProtected: true, Data: sbDigest[:]}
		}
		if verdict == evidence.PASS {
			afterFields["SPI_BOOT_CRYPT_CNT"], afterFields["SECURE_BOOT_EN"], afterFields["SECURE_VERSION"], afterFields["DIS_PAD_JTAG"] = 7, 1, 3, 1
			afterFields["ENABLE_SECURITY_DOWNLOAD"], afterFields["DIS_DOWNLOAD_MANUAL_ENCRYPT"] = 1, 1
			afterFields["WR_DIS"] = 0x00800001
		}
	}
	var err error
	if r.Efuse.Before, err = evidence.NewEfuseSnapshot(beforeFields, beforeKeys); err != nil {
		panic(err) // fixed inputs: a failure is a bug in this generator
	}
	if r.Efuse.After, err = evidence.NewEfuseSnapshot(afterFields, afterKeys); err != nil {
		panic(err)
	}

	// Checks: every one the flow plans, verified or with its reason.
	ck := func(name, what string, ok bool, because string) {
		c := evidence.Check{Name: name, What: what, Verified: ok, Because: because}
		c.Established = evidence.Establish(c.Kind(), o.Target)
		r.Checks = append(r.Checks, c)
	}
	ck(evidence.CheckOperator, "operator login against the station's user list", true, "")
	ck(evidence.CheckManifestSignature, "release manifest CMS signature chains to the plant root", true, "")
	ck(evidence.CheckImageHash, "every image's SHA-256 against the manifest", true, "")
	ck(evidence.CheckSecureBoot, "every image's Secure Boot v2 signature against the recipe keys", true, "")
	ck(evidence.CheckSecureVersion, "app secure_version 3 against the recipe floor 3", true, "")
	notRun := func(name, what string) { ck(name, what, false, names[stopAt]+" failed before this check could run") }
	if stopAt > 3 {
		ck(evidence.CheckEfuseReadback, "key blocks read back equal, RS and repeat error registers clear", true, "")
	} else {
		notRun(evidence.CheckEfuseReadback, "key blocks read back equal")
	}
	for _, im := range order {
		name := fmt.Sprintf("%s:%s@0x%x", evidence.CheckFlashMD5, im.role, im.off)
		switch {
		case code == "verify-md5" && im.role == "app":
			ck(name, "flash MD5 against the MD5 of the expected ciphertext", false, stopWhy)
		case stopAt <= 4:
			notRun(name, "flash MD5 against the MD5 of the expected ciphertext")
		default:
			ck(name, "flash MD5 against the MD5 of the expected ciphertext", true, "")
		}
	}
	if stopAt > 5 {
		ck(evidence.CheckDecryptedSignature, "expected ciphertext decrypts to images whose Secure Boot signatures verify", true, "")
		if i%3 == 2 {
			ck(evidence.CheckSPIProbe, "raw flash read off-chip equals the ciphertext written", false, "the fixture in "+r.Station.Slot+" has no SPI flash probe")
		} else {
			ck(evidence.CheckSPIProbe, "raw flash read off-chip equals the ciphertext written", true, "")
		}
		ck(evidence.CheckKeyReadProtected, "flash-encryption key block reads as zero after read protection", true, "")
		ck(evidence.CheckLockdown, "final eFuse state has the recipe's lockdown bits", true, "")
		ck(evidence.CheckBootLog, "board booted release 1.4.2 from ota_0", true, "")
	} else {
		notRun(evidence.CheckDecryptedSignature, "expected ciphertext decrypts to validly signed images")
		notRun(evidence.CheckSPIProbe, "raw flash read off-chip equals the ciphertext written")
		notRun(evidence.CheckKeyReadProtected, "key block reads as zero after read protection")
		notRun(evidence.CheckLockdown, "final eFuse state has the lockdown bits")
		notRun(evidence.CheckBootLog, "board boots the release")
	}

	r.Result = evidence.Result{Verdict: verdict, Code: code}
	if verdict != evidence.PASS {
		r.Result.Reason = stopWhy
	}
	return r
}

// StationName is the note key name of the test station.
const StationName = "fuseline-test-station"

// Station is a deterministic test station: its Ed25519 key signs evidence
// and checkpoints.
type Station struct {
	Name string
	Priv ed25519.PrivateKey
	Key  *evidence.StationKey // the public key
	sign note.Signer
}

// NewStation returns the test station whose key derives from seed.
func NewStation(seed byte) *Station {
	var s [32]byte
	for i := range s {
		s[i] = seed + byte(i)
	}
	priv := ed25519.NewKeyFromSeed(s[:])
	return &Station{Name: StationName, Priv: priv, Key: &evidence.StationKey{Name: StationName, Public: priv.Public().(ed25519.PublicKey)}}
}

// Signer returns the station's note signer for checkpoints.
func (s *Station) Signer() note.Signer {
	if s.sign == nil {
		// The key is fixed and valid, so this cannot fail.
		sk := noteSignerKey(s.Name, s.Priv)
		sg, err := note.NewSigner(sk)
		if err != nil {
			panic(err)
		}
		s.sign = sg
	}
	return s.sign
}

// SignerKey returns the station's note signer key text (PRIVATE+KEY+…).
func (s *Station) SignerKey() string { return noteSignerKey(s.Name, s.Priv) }

func noteSignerKey(name string, priv ed25519.PrivateKey) string {
	vkey, _ := note.NewEd25519VerifierKey(name, priv.Public().(ed25519.PublicKey))
	// vkey is name+hash+base64(1||pub); the signer key has the same hash and
	// carries the seed instead of the public key.
	hash := strings.SplitN(vkey, "+", 3)[1]
	return fmt.Sprintf("PRIVATE+KEY+%s+%s+%s", name, hash, base64.StdEncoding.EncodeToString(append([]byte{1}, priv.Seed()...)))
}

// Log is an in-memory tlog of records.
type Log struct {
	hashes []tlog.Hash
	n      int64
}

// Append adds a record and returns its index.
func (l *Log) Append(data []byte) (int64, error) {
	hs, err := tlog.StoredHashes(l.n, data, l)
	if err != nil {
		return 0, err
	}
	l.hashes = append(l.hashes, hs...)
	l.n++
	return l.n - 1, nil
}

// ReadHashes implements tlog.HashReader.
func (l *Log) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(l.hashes)) {
			return nil, fmt.Errorf("evidencetest: hash index %d not stored", x)
		}
		out[i] = l.hashes[x]
	}
	return out, nil
}

// Size is the number of records.
func (l *Log) Size() int64 { return l.n }

// Root is the tree hash of the whole log.
func (l *Log) Root() (tlog.Hash, error) { return tlog.TreeHash(l.n, l) }

// Prove returns the inclusion proof of record i in the current tree (no
// checkpoint attached).
func (l *Log) Prove(i int64, data []byte) (*evidence.InclusionProof, error) {
	p, err := tlog.ProveRecord(l.n, i, l)
	if err != nil {
		return nil, err
	}
	root, err := l.Root()
	if err != nil {
		return nil, err
	}
	return &evidence.InclusionProof{LeafIndex: i, TreeSize: l.n, LeafHash: tlog.RecordHash(data), RootHash: root, Proof: p}, nil
}

// Origin is the checkpoint origin of the test log.
const Origin = "fuseline.test/line1-st3/audit"

// Checkpoint returns the station-signed checkpoint of l's current tree.
func (s *Station) Checkpoint(l *Log) ([]byte, error) {
	root, err := l.Root()
	if err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: string(evidence.FormatCheckpoint(Origin, l.Size(), root))}, s.Signer())
}

// BundleOptions says what goes into a test bundle.
type BundleOptions struct {
	Images bool // put the release images under images/
	// Noise is the number of unrelated audit records appended before and
	// between evidence records, so proofs have depth.
	Noise int
	// AuditLeaves makes each evidence file's leaf an audit-log record that
	// names it by digest (as reports/audit logs it), instead of the file
	// itself; the proof then carries the leaf record.
	AuditLeaves bool
}

// AuditLeaf returns an audit-log record line naming an evidence file by
// digest, in the shape of reports/audit records.
func AuditLeaf(seq int64, r *evidence.Record, data []byte) []byte {
	return fmt.Appendf(nil, `{"seq":%d,"time":%q,"station":%q,"operator":%q,"device":%q,"run":%q,"event":"evidence","id":"ev-%d","result":"ok","details":{%q:%q}}`,
		seq, r.Timing.End.UTC().Format(time.RFC3339Nano), r.Station.ID, r.Operator.ID, r.Device.MAC, r.ID, seq,
		evidence.LeafEvidenceKey, evidence.SHA256(data).String())
}

// Bundle signs each record, appends it to a fresh audit log and returns a
// bundle: station.pub, checkpoint, evidence/*.json with .sig and .proof, and
// the images if asked.
func (s *Station) Bundle(recs []*evidence.Record, o BundleOptions) (evidence.Bundle, error) {
	b := evidence.Bundle{}
	var log Log
	type entry struct {
		name       string
		data, leaf []byte
		idx        int64
	}
	var entries []entry
	for i, r := range recs {
		for k := 0; k < o.Noise; k++ {
			if _, err := log.Append(fmt.Appendf(nil, "step event %d.%d\n", i, k)); err != nil {
				return nil, err
			}
		}
		data, sig, err := evidence.Sign(r, s.Priv)
		if err != nil {
			return nil, err
		}
		leaf := data
		if o.AuditLeaves {
			leaf = AuditLeaf(log.Size(), r, data)
		}
		idx, err := log.Append(leaf)
		if err != nil {
			return nil, err
		}
		name := evidence.BundleEvidenceDir + "/" + r.FileName()
		b[name], b[name+evidence.SignatureSuffix] = data, sig
		entries = append(entries, entry{name, data, leaf, idx})
	}
	cp, err := s.Checkpoint(&log)
	if err != nil {
		return nil, err
	}
	b[evidence.BundleCheckpointFile] = cp
	for _, e := range entries {
		p, err := log.Prove(e.idx, e.leaf)
		if err != nil {
			return nil, err
		}
		if o.AuditLeaves {
			p.Leaf = e.leaf
		}
		pj, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		b[e.name+evidence.ProofSuffix] = pj
	}
	pub, err := s.Key.MarshalText()
	if err != nil {
		return nil, err
	}
	b[evidence.BundleKeyFile] = pub
	if o.Images {
		for name, data := range Images() {
			b[evidence.BundleImagesDir+"/"+name] = data
		}
	}
	return b, nil
}
