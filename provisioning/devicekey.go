package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"fuseline/provisioning/journal"
	"fuseline/provisioning/keyseal"
	"fuseline/reports/audit"
)

// AuditKeyDestroyed is the audit event of a device key destroyed on
// purpose (DestroyKey).
const AuditKeyDestroyed audit.Event = "key.destroy"

// ErrNoKey: DestroyKey found no stored key for the board.
var ErrNoKey = errors.New("provisioning: no device key is held for this board")

// keyDestroyedData is the journal record of a destroyed key.
type keyDestroyedData struct {
	Operator string    `json:"operator"`
	Digest   string    `json:"key_digest,omitempty"`
	Time     time.Time `json:"-"`
}

// sealer seals the device key to the station (DATA/station.seal).
func (x *run) sealer() *keyseal.Sealer { return keyseal.InDataDir(x.dataDir()) }

// refuseDestroyed refuses a board whose unfinished run lost its key on
// purpose: without it, a half-burned key block cannot be completed and the
// flash cannot be written, so the board cannot be resumed.
func (s journalState) refuseDestroyed() error {
	if s.destroyed == nil || (s.started && s.complete) {
		return nil
	}
	return fmt.Errorf("%w: this board can no longer be resumed: its device key was destroyed by %s at %s (fuseline journal destroy-key)",
		ErrConflict, s.destroyed.Operator, s.destroyed.Time.UTC().Format(time.RFC3339))
}

// AbandonedBoard is a board whose journal has a run that did not pass.
type AbandonedBoard struct {
	MAC      string    `json:"mac"`
	Run      string    `json:"run"`
	LastStep string    `json:"last_step"`
	LastTime time.Time `json:"last_time"`
	// Age is how long the board has been left, from its last record.
	Age        time.Duration `json:"-"`
	AgeSeconds int64         `json:"age_seconds"`
	// KeyHeld: a sealed (or, from an earlier version, raw) device key is
	// stored for it.
	KeyHeld bool `json:"key_held"`
	// KeySealed: the stored key is sealed to the station.
	KeySealed bool `json:"key_sealed"`
	// KeyDestroyed: the key was destroyed on purpose; the board cannot be
	// resumed.
	KeyDestroyed bool `json:"key_destroyed"`
}

// Abandoned lists the boards in dataDir's journal whose last run did not
// pass, oldest first; now is the clock for their age.
func Abandoned(dataDir string, now time.Time) ([]AbandonedBoard, error) {
	dir := filepath.Join(dataDir, "journal")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("provisioning: journal: %w", err)
	}
	var out []AbandonedBoard
	for _, e := range ents {
		dev, ok := strings.CutSuffix(e.Name(), ".jsonl")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		recs, err := journal.Load(dir, dev)
		if err != nil {
			return nil, err
		}
		s := replay(recs)
		if !s.started || s.complete || len(recs) == 0 {
			continue
		}
		b := AbandonedBoard{MAC: macOf(dev), KeyDestroyed: s.destroyed != nil}
		for i := len(recs) - 1; i >= 0; i-- {
			r := recs[i]
			if b.Run == "" && r.Run != "" {
				b.Run = r.Run
			}
			if b.LastStep == "" && r.Step != "" {
				b.LastStep = r.Step
			}
		}
		if b.LastStep == "" {
			b.LastStep = recs[len(recs)-1].Kind
		}
		b.LastTime = recs[len(recs)-1].Time
		b.Age = now.Sub(b.LastTime)
		b.AgeSeconds = int64(b.Age / time.Second)
		if st, err := os.Stat(filepath.Join(dir, dev+".key")); err == nil {
			b.KeyHeld = true
			b.KeySealed = st.Size() > 64
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastTime.Before(out[j].LastTime) })
	return out, nil
}

// DestroyKey destroys the stored device key of the board mac in dataDir on
// an operator's explicit order: the audit record is written and synced
// first, then the journal records that the board can no longer be resumed
// (a later run on it is refused with that reason), then the key file is
// overwritten and removed. The key itself is never read.
func DestroyKey(ctx context.Context, log *audit.Log, dataDir, mac, operator string) error {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return fmt.Errorf("provisioning: %q is not a MAC (want aa:bb:cc:dd:ee:ff)", mac)
	}
	mac = hw.String()
	dir := filepath.Join(dataDir, "journal")
	dev := journal.DeviceName(mac)
	if _, err := os.Stat(filepath.Join(dir, dev+".key")); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s (%s)", ErrNoKey, mac, filepath.Join(dir, dev+".key"))
		}
		return fmt.Errorf("provisioning: %w", err)
	}
	j, err := journal.Open(dir, dev, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrJournal, err)
	}
	defer j.Close()
	s := replay(j.Records())
	run := ""
	if n := len(j.Records()); n > 0 {
		run = j.Records()[n-1].Run
	}
	d := audit.Details{"reason": "device key destroyed by operator; the board cannot be resumed"}
	if s.keyDigest != "" {
		d["key_digest"] = s.keyDigest
	}
	if _, err := log.Append(ctx, audit.Entry{Operator: operator, Device: mac, Run: run, Event: AuditKeyDestroyed, Result: audit.ResultOK, Details: d}); err != nil {
		return fmt.Errorf("provisioning: audit: %w", err)
	}
	if err := log.Sync(ctx); err != nil {
		return fmt.Errorf("provisioning: audit: %w", err)
	}
	data, err := json.Marshal(keyDestroyedData{Operator: operator, Digest: s.keyDigest})
	if err != nil {
		return err
	}
	if _, err := j.Append(journal.Record{Run: run, Kind: recKeyDestroyed, Data: data}); err != nil {
		return fmt.Errorf("%w: %v", ErrJournal, err)
	}
	if err := j.DropKey(); err != nil {
		return fmt.Errorf("%w: %v", ErrJournal, err)
	}
	return nil
}

// macOf turns a journal device name back into aa:bb:cc:dd:ee:ff.
func macOf(dev string) string {
	if len(dev) != 12 {
		return dev
	}
	return dev[0:2] + ":" + dev[2:4] + ":" + dev[4:6] + ":" + dev[6:8] + ":" + dev[8:10] + ":" + dev[10:12]
}
