// Package journal is the per-device provisioning journal: an append-only
// file of JSON lines, each record written and fsynced before the call
// returns, so that after a crash or a pulled cable the station knows which
// step of which run was under way (design.md, "Every step is written to a
// journal before and after it runs").
//
// Beside the journal, a device-key file holds the per-device flash-encryption
// key, sealed to the station (a Sealer, package keyseal; mode 0600, written
// atomically) from before its first burn until the run is complete: a key block that lost power half-way is recovered by
// programming the same data again (esp-security-facts.md §6, risks), which
// needs the key. DropKey overwrites and removes it. Records themselves never
// hold key material; the key is named by a digest.
//
// A slot pointer (<slot>.current) names the device a fixture slot is working
// on, so a board that locked itself into secure download mode (where its MAC
// can no longer be read) is still matched to its journal.
//
// The package does file I/O only; what the records mean is up to the caller
// (package provisioning).
package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"fuseline/internal/atomicfile"
	"fuseline/internal/inputfile"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// ErrCorrupt: a record other than the last is not valid; the journal was
// edited or damaged and is not trusted to resume from.
var ErrCorrupt = errors.New("journal: corrupt record")

// Record is one journal line.
type Record struct {
	Seq  int       `json:"seq"`
	Time time.Time `json:"time"`
	Run  string    `json:"run"`
	// Kind says what the record is ("run.start", "step.begin", "step.end",
	// …); the caller defines the kinds.
	Kind   string          `json:"kind"`
	Step   string          `json:"step,omitempty"`
	Result string          `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// Journal is one device's journal file, open for appending. It is not safe
// for concurrent use; one slot works on one device at a time.
type Journal struct {
	dir, device string
	f           *os.File
	records     []Record
	// Torn reports that the last line was incomplete when the journal was
	// opened (a crash during a write) and was cut off.
	Torn       bool
	now        func() time.Time
	good, size int64
}

var devicePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// CheckName reports whether name can name a device or a fixture slot: it
// becomes part of a file name in the journal directory, so it must be
// 1–64 of lower-case letters, digits, '.', '_' or '-' (no path separators).
func CheckName(name string) error {
	if !devicePattern.MatchString(name) {
		return fmt.Errorf("journal: %q is not a plain name: 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", name)
	}
	return nil
}

// DeviceName turns a MAC ("7c:df:a1:00:00:01") into the file-name form
// "7cdfa1000001"; other names must already be lower-case letters, digits,
// '.', '_' or '-'.
func DeviceName(mac string) string {
	return strings.ToLower(strings.NewReplacer(":", "", "-", "").Replace(mac))
}

// Open opens (creating if needed) the journal of device in dir. dir is
// created with mode 0700 and the file with 0600: the journal sits beside
// the device key. now is the clock for records; nil means time.Now.
func Open(dir, device string, now func() time.Time) (*Journal, error) {
	if !devicePattern.MatchString(device) {
		return nil, fmt.Errorf("journal: device name %q is not a plain file name", device)
	}
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	path := filepath.Join(dir, device+".jsonl")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{dir: dir, device: device, f: f, now: now}
	if err := j.load(); err != nil {
		f.Close()
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return j, nil
}

// load reads every record. Bytes after the last newline are a write cut
// short by a crash (each record is one write ending in a newline): they are
// cut off and Torn is set. A complete line that is not a record, or a record
// out of sequence, is ErrCorrupt.
func (j *Journal) load() error {
	if err := j.loadRecords(); err != nil {
		return err
	}
	if j.good < j.size {
		j.Torn = true
		if err := j.f.Truncate(j.good); err != nil {
			return fmt.Errorf("journal: cut torn tail of %s: %w", j.path(), err)
		}
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	if _, err := j.f.Seek(j.good, io.SeekStart); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// loadRecords parses the file; good is the length of its complete records.
func (j *Journal) loadRecords() error {
	b, err := io.ReadAll(j.f)
	if err != nil {
		return fmt.Errorf("journal: read %s: %w", j.path(), err)
	}
	good := 0
	for line := 1; ; line++ {
		i := bytes.IndexByte(b[good:], '\n')
		if i < 0 {
			break
		}
		text := b[good : good+i]
		var r Record
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return fmt.Errorf("%w: %s line %d (byte %d): %v", ErrCorrupt, j.path(), line, good, err)
		}
		if dec.More() {
			return fmt.Errorf("%w: %s line %d (byte %d): more than one record", ErrCorrupt, j.path(), line, good)
		}
		if r.Seq != len(j.records) {
			return fmt.Errorf("%w: %s line %d (byte %d): seq %d, want %d", ErrCorrupt, j.path(), line, good, r.Seq, len(j.records))
		}
		j.records = append(j.records, r)
		good += i + 1
	}
	j.good, j.size = int64(good), int64(len(b))
	return nil
}

func (j *Journal) path() string { return filepath.Join(j.dir, j.device+".jsonl") }

// Path is the journal file.
func (j *Journal) Path() string { return j.path() }

// Device is the device name the journal belongs to.
func (j *Journal) Device() string { return j.device }

// Records returns every record, oldest first. The slice must not be changed.
func (j *Journal) Records() []Record { return j.records }

// Append writes r (Seq and, if zero, Time filled in) and fsyncs the file
// before returning: once Append returns, the record survives a power cut.
func (j *Journal) Append(r Record) (Record, error) {
	if j.f == nil {
		return r, errors.New("journal: closed")
	}
	r.Seq = len(j.records)
	if r.Time.IsZero() {
		r.Time = j.now()
	}
	r.Time = r.Time.UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return r, fmt.Errorf("journal: %w", err)
	}
	b = append(b, '\n')
	if _, err := j.f.Write(b); err != nil {
		return r, fmt.Errorf("journal: write %s: %w", j.path(), err)
	}
	if err := j.f.Sync(); err != nil {
		return r, fmt.Errorf("journal: sync %s: %w", j.path(), err)
	}
	j.records = append(j.records, r)
	return r, nil
}

// Close closes the file.
func (j *Journal) Close() error {
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

func (j *Journal) keyPath() string { return filepath.Join(j.dir, j.device+".key") }

// Sealer seals a device key for its file and opens it again (package
// keyseal does it to the station's sealing key). The journal directory alone
// must not reveal a key.
type Sealer interface {
	Seal(device string, key []byte) ([]byte, error)
	Open(device string, sealed []byte) ([]byte, error)
}

// maxRawKey: a key file this short holds the raw key, as stations wrote it
// before keys were sealed (the longest flash key is 64 bytes; a sealed key
// is several hundred bytes).
const maxRawKey = 64

// maxKeyFile bounds what is read of a key file.
const maxKeyFile = 4 << 10

// SaveKey stores the device key sealed by s (mode 0600, written to a
// temporary file, fsynced, renamed, directory fsynced), replacing any
// earlier one.
func (j *Journal) SaveKey(key []byte, s Sealer) error {
	sealed, err := s.Seal(j.device, key)
	if err != nil {
		return fmt.Errorf("journal: device key of %s: %w", j.device, err)
	}
	return writeAtomic(j.keyPath(), sealed, 0o600)
}

// LoadKey returns the stored device key opened by s, or nil if there is
// none. A raw key left by an earlier version is sealed in its place (the
// old file's bytes overwritten) before it is returned.
func (j *Journal) LoadKey(s Sealer) ([]byte, error) {
	key, raw, err := loadKey(j.dir, j.device, s)
	if err != nil || !raw {
		return key, err
	}
	if err := j.migrateKey(key, s); err != nil {
		clear(key)
		return nil, err
	}
	return key, nil
}

// migrateKey replaces a raw key file by the sealed key: the sealed file is
// renamed into place first (a crash leaves one of the two, both usable),
// then the old file, still open, is overwritten with zeros.
func (j *Journal) migrateKey(key []byte, s Sealer) error {
	old, err := os.OpenFile(j.keyPath(), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer old.Close()
	if err := j.SaveKey(key, s); err != nil {
		return err
	}
	if _, err := old.WriteAt(make([]byte, len(key)), 0); err != nil {
		return fmt.Errorf("journal: zeroise the unsealed key of %s: %w", j.device, err)
	}
	if err := old.Sync(); err != nil {
		return fmt.Errorf("journal: zeroise the unsealed key of %s: %w", j.device, err)
	}
	return nil
}

// loadKey reads and opens device's key file; raw reports a key stored
// unsealed by an earlier version.
func loadKey(dir, device string, s Sealer) (key []byte, raw bool, err error) {
	path := filepath.Join(dir, device+".key")
	b, err := inputfile.ReadFile(context.Background(), path, maxKeyFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("journal: device key of %s: %w", device, err)
	}
	if len(b) <= maxRawKey {
		return b, true, nil
	}
	key, err = s.Open(device, b)
	if err != nil {
		return nil, false, fmt.Errorf("journal: device key of %s: %w", device, err)
	}
	return key, false, nil
}

// DropKey overwrites the stored device key with zeros, fsyncs, and removes
// the file. A missing file is not an error.
func (j *Journal) DropKey() error {
	p := j.keyPath()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	st, err := f.Stat()
	if err == nil {
		_, err = f.WriteAt(make([]byte, st.Size()), 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("journal: zeroise device key: %w", err)
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return syncDir(j.dir)
}

// HasKey reports whether a device key is stored.
func (j *Journal) HasKey() bool {
	_, err := os.Stat(j.keyPath())
	return err == nil
}

func currentPath(dir, slot string) string { return filepath.Join(dir, "slot-"+slot+".current") }

// SetCurrent records that slot is working on device.
func SetCurrent(dir, slot, device string) error {
	if !devicePattern.MatchString(slot) || !devicePattern.MatchString(device) {
		return fmt.Errorf("journal: slot %q or device %q is not a plain name", slot, device)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return writeAtomic(currentPath(dir, slot), []byte(device+"\n"), 0o600)
}

// Current returns the device slot is working on, or "" if none.
func Current(dir, slot string) (string, error) {
	b, err := os.ReadFile(currentPath(dir, slot))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("journal: %w", err)
	}
	d := strings.TrimSpace(string(b))
	if !devicePattern.MatchString(d) {
		return "", fmt.Errorf("%w: %s names %q", ErrCorrupt, currentPath(dir, slot), d)
	}
	return d, nil
}

// ClearCurrent removes slot's pointer.
func ClearCurrent(dir, slot string) error {
	err := os.Remove(currentPath(dir, slot))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	if err := atomicfile.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("journal: sync %s: %w", dir, err)
	}
	return nil
}

// Load reads device's journal in dir without opening it for writing (a dry
// run must not create files). A missing journal is no records.
func Load(dir, device string) ([]Record, error) {
	if !devicePattern.MatchString(device) {
		return nil, fmt.Errorf("journal: device name %q is not a plain file name", device)
	}
	f, err := os.Open(filepath.Join(dir, device+".jsonl"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	j := &Journal{dir: dir, device: device, f: f}
	if err := j.loadRecords(); err != nil {
		return nil, err
	}
	return j.records, nil
}

// LoadKey reads device's stored key in dir (nil if there is none), opened
// by s, without opening the journal or changing any file.
func LoadKey(dir, device string, s Sealer) ([]byte, error) {
	if !devicePattern.MatchString(device) {
		return nil, fmt.Errorf("journal: device name %q is not a plain file name", device)
	}
	key, _, err := loadKey(dir, device, s)
	return key, err
}
