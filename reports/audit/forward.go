package audit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"fuseline/reports/syslog"
)

// Structured-data IDs of the forwarded messages. 32473 is the example
// private enterprise number of RFC 5612; a plant replaces it with its own
// in the SIEM's parsing rules if it must.
const (
	SDRecord     = "audit@32473"
	SDCheckpoint = "checkpoint@32473"
	// AppName is the syslog APP-NAME of every forwarded message.
	AppName = "fuseline"
)

// RecordMessage is the syslog form of an appended record: facility "log
// audit", severity warning for fail/refused/aborted and info otherwise,
// HOSTNAME the station, MSGID the event, structured data
// [audit@32473 seq station operator device run event id result leaf tree_size]
// and, as MSG, the record line itself so the SIEM can recompute the leaf.
func RecordMessage(rc Receipt) syslog.Message {
	r := rc.Record
	sev := syslog.SeverityInfo
	switch r.Result {
	case ResultFail, ResultRefused, ResultAborted:
		sev = syslog.SeverityWarning
	}
	params := []syslog.Param{
		{Name: "seq", Value: strconv.FormatInt(r.Seq, 10)},
		{Name: "station", Value: r.Station},
		{Name: "operator", Value: r.Operator},
	}
	if r.Device != "" {
		params = append(params, syslog.Param{Name: "device", Value: r.Device})
	}
	if r.Run != "" {
		params = append(params, syslog.Param{Name: "run", Value: r.Run})
	}
	params = append(params,
		syslog.Param{Name: "event", Value: string(r.Event)},
		syslog.Param{Name: "id", Value: r.ID},
		syslog.Param{Name: "result", Value: string(r.Result)},
		syslog.Param{Name: "leaf", Value: rc.Leaf.String()},
		syslog.Param{Name: "tree_size", Value: strconv.FormatInt(rc.TreeSize, 10)},
	)
	return syslog.Message{
		Facility: syslog.FacilityLogAudit,
		Severity: sev,
		Time:     r.Time,
		Hostname: r.Station,
		AppName:  AppName,
		MsgID:    string(r.Event),
		Data:     []syslog.Element{{ID: SDRecord, Params: params}},
		Msg:      string(rc.Line),
	}
}

// CheckpointMessage is the syslog form of a signed checkpoint: MSGID
// "checkpoint", structured data [checkpoint@32473 origin size root note]
// with the whole signed note in base64 (it has newlines), and a one-line
// summary as MSG.
func CheckpointMessage(station string, sc SignedCheckpoint, t time.Time) syslog.Message {
	return syslog.Message{
		Facility: syslog.FacilityLogAudit,
		Severity: syslog.SeverityNotice,
		Time:     t.UTC().Truncate(time.Microsecond),
		Hostname: station,
		AppName:  AppName,
		MsgID:    "checkpoint",
		Data: []syslog.Element{{ID: SDCheckpoint, Params: []syslog.Param{
			{Name: "origin", Value: sc.Origin},
			{Name: "size", Value: strconv.FormatInt(sc.Size, 10)},
			{Name: "root", Value: sc.Root.String()},
			{Name: "note", Value: base64.StdEncoding.EncodeToString(sc.Note)},
		}}},
		Msg: fmt.Sprintf("checkpoint %s size %d root %s", sc.Origin, sc.Size, sc.Root),
	}
}

// The cursor file is "<records forwarded> <last checkpoint size forwarded>\n"
// in fixed-width decimal, rewritten in place. It is written only after the
// Sink accepted the messages and is not fsynced: if it lags after a crash,
// Open sends some messages again (at least once), never fewer.
const cursorWidth = 20

func (l *Log) openCursor() error {
	f, err := os.OpenFile(l.layout.Cursor, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("audit: forward cursor: %w", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("audit: forward cursor: %w", err)
	}
	if s := strings.TrimSpace(string(b)); s != "" {
		var recs, cp int64
		if _, err := fmt.Sscanf(s, "%d %d", &recs, &cp); err != nil || recs < 0 || cp < 0 {
			f.Close()
			return fmt.Errorf("audit: forward cursor %s: %q is not \"<records> <checkpoint size>\"", l.layout.Cursor, s)
		}
		// A cursor beyond the log (the log was replaced) means nothing sent.
		if recs <= l.size {
			l.fwdRecs, l.fwdCP = recs, cp
		}
	}
	l.cursor = f
	return nil
}

func (l *Log) writeCursor() error {
	_, err := l.cursor.WriteAt(fmt.Appendf(nil, "%0*d %0*d\n", cursorWidth, l.fwdRecs, cursorWidth, l.fwdCP), 0)
	return err
}

// forwardLocked hands what is on disk to the Sink. A failure is logged and
// retried at the next sync, from the file.
func (l *Log) forwardLocked(ctx context.Context) {
	if l.cfg.Forward == nil || l.broken != nil {
		return
	}
	if l.fwdBusy {
		l.catchUp(ctx)
		return
	}
	// pending holds records up to l.size; only those up to l.synced go.
	n := 0
	for n < len(l.pending) && (l.pending[n].recSeq < l.synced) {
		n++
	}
	if n == 0 {
		return
	}
	msgs := make([]syslog.Message, n)
	for i := range n {
		msgs[i] = l.pending[i].msg
	}
	if err := l.cfg.Forward.Send(ctx, msgs...); err != nil {
		l.log.Warn("audit: forwarding failed; will retry from the log", "err", err, "records_from", l.fwdRecs)
		l.pending = nil
		l.fwdBusy = true
		return
	}
	for _, it := range l.pending[:n] {
		l.advance(it)
	}
	l.pending = append(l.pending[:0], l.pending[n:]...)
	if err := l.writeCursor(); err != nil {
		l.log.Warn("audit: forward cursor not written; some messages may be sent twice", "err", err)
	}
}

func (l *Log) advance(it fwdItem) {
	if it.recSeq >= 0 {
		l.fwdRecs = it.recSeq + 1
	} else {
		l.fwdCP = it.cpSize
	}
}

// catchUp sends records fwdRecs..synced-1 from the file, each checkpoint
// after the record that completes it, in batches.
func (l *Log) catchUp(ctx context.Context) {
	r, err := os.Open(l.layout.Log)
	if err != nil {
		l.log.Warn("audit: forwarding catch-up cannot read the log", "err", err)
		return
	}
	defer r.Close()
	cps := map[int64]SignedCheckpoint{}
	if files, err := ReadCheckpoints(l.layout.Checkpoints); err == nil {
		for _, cf := range files {
			if sc, err := OpenCheckpoint(cf.Note, l.verifier); err == nil && sc.Size > l.fwdCP && sc.Size <= l.synced {
				cps[sc.Size] = sc
			}
		}
	}
	const batch = 512
	var items []fwdItem
	flush := func() error {
		if len(items) == 0 {
			return nil
		}
		msgs := make([]syslog.Message, len(items))
		for i, it := range items {
			msgs[i] = it.msg
		}
		if err := l.cfg.Forward.Send(ctx, msgs...); err != nil {
			return err
		}
		for _, it := range items {
			l.advance(it)
		}
		items = items[:0]
		if err := l.writeCursor(); err != nil {
			l.log.Warn("audit: forward cursor not written; some messages may be sent twice", "err", err)
		}
		return nil
	}
	addCP := func(size int64) {
		if sc, ok := cps[size]; ok {
			items = append(items, fwdItem{msg: CheckpointMessage(l.cfg.Station, sc, l.now()), recSeq: -1, cpSize: size})
		}
	}
	// A checkpoint of size fwdRecs may still be unsent (crash between the
	// record batch and the checkpoint).
	addCP(l.fwdRecs)
	var i int64
	errStop := errors.New("stop")
	err = scanLines(ctx, r, func(line []byte, term bool) error {
		defer func() { i++ }()
		if i < l.fwdRecs {
			return nil
		}
		if i >= l.synced || !term {
			return errStop
		}
		rec, err := ParseRecord(line)
		if err != nil {
			return fmt.Errorf("audit: forwarding catch-up: line %d: %w", i+1, err)
		}
		rc := Receipt{Record: *rec, Line: append([]byte(nil), line...), Leaf: tlog.RecordHash(line), TreeSize: i + 1}
		items = append(items, fwdItem{msg: RecordMessage(rc), recSeq: i})
		addCP(i + 1)
		if len(items) >= batch {
			return flush()
		}
		return nil
	})
	if err == nil || errors.Is(err, errStop) {
		err = flush()
	}
	if err != nil {
		l.log.Warn("audit: forwarding failed; will retry from the log", "err", err, "records_from", l.fwdRecs)
		return
	}
	if l.fwdRecs >= l.size {
		// Caught up: new records go through pending again.
		l.fwdBusy = false
		l.pending = nil
	}
}
