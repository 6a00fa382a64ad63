package syslog_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"
	"golang.org/x/mod/sumdb/tlog"

	"fuseline/reports/audit"
	"fuseline/reports/syslog"
)

// rsyslog is a real rsyslogd (Debian rsyslog + rsyslog-gnutls) started by
// the test on 127.0.0.1, per docs/dependencies.md §3: an RFC 5425 TLS input
// that demands a client certificate named station-01 (x509/name), writing
// every message to raw.log in RFC 5424 form.
type rsyslog struct {
	t       *testing.T
	bin     string
	dir     string
	conf    string
	pidFile string
	raw     string
	addr    string
	tls     *tls.Config // the station's, for the readiness probe
	cmd     *exec.Cmd
	exited  chan struct{}
}

func startRsyslog(t *testing.T, p *testPKI) *rsyslog {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		t.Skip("rsyslogd not installed (Debian packages rsyslog and rsyslog-gnutls; `make test` installs them)")
	}
	dir := t.TempDir()
	r := &rsyslog{t: t, bin: bin, dir: dir, conf: filepath.Join(dir, "rsyslog.conf"),
		pidFile: filepath.Join(dir, "rsyslogd.pid"), raw: filepath.Join(dir, "raw.log"), tls: p.clientTLS()}
	if err := os.MkdirAll(filepath.Join(dir, "work"), 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port, released for rsyslogd
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := fmt.Sprintf(`global(workDirectory=%q DefaultNetstreamDriver="gtls"
       DefaultNetstreamDriverCAFile=%q
       DefaultNetstreamDriverCertFile=%q DefaultNetstreamDriverKeyFile=%q)
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="x509/name" PermittedPeer=["station-01"])
input(type="imtcp" port="%d" address="127.0.0.1")
action(type="omfile" file=%q template="RSYSLOG_SyslogProtocol23Format")
`, filepath.Join(dir, "work"), p.CAFile, p.ServerCert, p.ServerKey, port, r.raw)
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	check := exec.Command(bin, "-N1", "-f", r.conf)
	if out, err := check.CombinedOutput(); err != nil {
		if bytes.Contains(out, []byte("gtls")) {
			t.Skipf("rsyslog TLS driver missing (install rsyslog-gnutls): %s", firstLine(out))
		}
		t.Fatalf("rsyslogd -N1: %v: %s", err, out)
	}
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			out, _ := os.ReadFile(filepath.Join(dir, "rsyslogd.out"))
			raw, _ := os.ReadFile(r.raw)
			t.Logf("rsyslogd output:\n%s\nraw.log:\n%s", out, raw)
		}
	})
	r.start()
	return r
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

func (r *rsyslog) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.bin, "-n", "-f", r.conf, "-i", r.pidFile)
	out, err := os.OpenFile(filepath.Join(r.dir, "rsyslogd.out"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	defer out.Close() // the child has its own copy
	r.cmd.Stdout, r.cmd.Stderr = out, out
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(r.cmd, r.exited)
	// Ready when the pid file exists and the port takes a TLS handshake.
	waitFor(r.t, 15*time.Second, "rsyslogd to listen on "+r.addr, func() bool {
		select {
		case <-r.exited:
			r.t.Fatal("rsyslogd exited during start-up")
		default:
		}
		if _, err := os.Stat(r.pidFile); err != nil {
			return false
		}
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: r.tls}
		c, err := d.Dial("tcp", r.addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// stop kills rsyslogd by its pid file and waits (bounded) for it to exit.
func (r *rsyslog) stop() {
	if r.cmd == nil {
		return
	}
	b, err := os.ReadFile(r.pidFile)
	pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if err == nil && perr == nil && pid > 0 {
		syscall.Kill(pid, syscall.SIGTERM)
	} else {
		r.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-r.exited
	}
	os.Remove(r.pidFile)
	r.cmd = nil
}

// messages parses raw.log and returns the fuseline messages in order.
func (r *rsyslog) messages() []*rfc5424.SyslogMessage {
	f, err := os.Open(r.raw)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	var out []*rfc5424.SyslogMessage
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m, err := rfc5424.NewParser().Parse(sc.Bytes())
		if err != nil {
			continue // rsyslogd's own status lines
		}
		sm := m.(*rfc5424.SyslogMessage)
		if sm.Appname != nil && *sm.Appname == audit.AppName {
			out = append(out, sm)
		}
	}
	return out
}

// TestRsyslogAcrossRestart: audit records go through the spool to a real
// rsyslog over mutual TLS; rsyslogd is killed in the middle of a run, more
// records are appended, it is restarted, and every record and checkpoint
// arrives in order with its structured data intact.
func TestRsyslogAcrossRestart(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	r := startRsyslog(t, p)
	ctx := context.Background()
	data := t.TempDir()
	lay := audit.NewLayout(data)
	f, err := syslog.Open(ctx, syslog.Config{Addr: r.addr, TLS: p.clientTLS(), Spool: lay.Spool,
		ConfirmAfter: 200 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond,
		DialTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	startRun(t, f)
	l, err := audit.Open(ctx, audit.Config{Dir: data, Station: "st-01", Forward: f, Sync: audit.SyncEveryRecord, CheckpointEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)

	run := func(id, device string) []audit.Entry {
		e := func(ev audit.Event, d audit.Details) audit.Entry {
			return audit.Entry{Operator: "alice", Device: device, Run: id, Event: ev, Result: audit.ResultOK, Details: d}
		}
		return []audit.Entry{
			e(audit.EventRunStart, audit.Details{"slot": "1"}),
			e(audit.EventIntake, audit.Details{"release": "1.4.2"}),
			e(audit.EventEfuseBurn, audit.Details{"field": "BLOCK_KEY0", "key_purpose": "XTS_AES_128_KEY"}),
			e(audit.EventEfuseBurn, audit.Details{"field": "BLOCK_KEY1", "key_purpose": "SECURE_BOOT_DIGEST0"}),
			e(audit.EventRegionWritten, audit.Details{"region": "app0"}),
			e(audit.EventRegionVerified, audit.Details{"region": "app0"}),
			e(audit.EventLock, nil),
			e(audit.EventResult, audit.Details{"verdict": "PASS"}),
		}
	}
	appendAll := func(es []audit.Entry) {
		for _, e := range es {
			if _, err := l.Append(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	wait := func(n int, what string) {
		waitFor(t, 30*time.Second, what, func() bool { return len(distinct(t, r.messages())) >= n })
	}

	a, b := run("r-1", "24:0a:c4:00:00:01"), run("r-2", "24:0a:c4:00:00:02")
	appendAll(a) // 8 records + checkpoint
	wait(9, "run 1 at rsyslog")
	appendAll(b[:3]) // run 2 starts
	wait(12, "the start of run 2 at rsyslog")

	// Let the forwarder confirm what rsyslog has (ack + ConfirmAfter), so
	// that nothing needs re-sending after the restart.
	waitFor(t, 10*time.Second, "12 messages confirmed", func() bool { return f.Stats().Confirmed >= 12 })
	r.stop() // the SIEM dies in the middle of run 2
	appendAll(b[3:6])
	if st := f.Stats(); st.Pending == 0 {
		t.Fatalf("nothing pending while rsyslogd is down: %+v", st)
	}
	r.start()
	appendAll(b[6:]) // run 2 ends: result + checkpoint
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := f.Flush(fctx); err != nil {
		t.Fatalf("flush: %v (stats %+v)", err, f.Stats())
	}
	wait(18, "every record and checkpoint at rsyslog")

	// Check what rsyslog wrote against the log itself.
	lines := readLog(t, lay.Log)
	cps, _ := audit.ReadCheckpoints(lay.Checkpoints)
	got := distinct(t, r.messages())
	var rec, cp int
	for i, m := range got {
		if *m.MsgID == "checkpoint" {
			sc, err := audit.OpenCheckpoint(mustB64(t, sd(m, audit.SDCheckpoint, "note")), l.Verifier())
			if err != nil {
				t.Fatalf("message %d: forwarded checkpoint: %v", i, err)
			}
			want, _ := audit.OpenCheckpoint(cps[cp].Note, l.Verifier())
			if sc.Size != int64(rec) || sc.Root != want.Root || sd(m, audit.SDCheckpoint, "root") != want.Root.String() {
				t.Fatalf("message %d: checkpoint size %d root %s after %d records, want %d %s", i, sc.Size, sc.Root, rec, want.Size, want.Root)
			}
			cp++
			continue
		}
		if rec >= len(lines) {
			t.Fatalf("more records at rsyslog than in the log")
		}
		if *m.Message != lines[rec] {
			t.Fatalf("record %d: rsyslog has\n%s\nthe log has\n%s", rec, *m.Message, lines[rec])
		}
		leaf := tlog.RecordHash([]byte(lines[rec]))
		if sd(m, audit.SDRecord, "seq") != fmt.Sprint(rec) || sd(m, audit.SDRecord, "leaf") != leaf.String() ||
			sd(m, audit.SDRecord, "tree_size") != fmt.Sprint(rec+1) || sd(m, audit.SDRecord, "device") == "" ||
			sd(m, audit.SDRecord, "event") != *m.MsgID {
			t.Fatalf("record %d: structured data %v", rec, *m.StructuredData)
		}
		recd, _ := audit.ParseRecord([]byte(lines[rec]))
		if !m.Timestamp.Equal(recd.Time) {
			t.Fatalf("record %d: timestamp %v, record time %v (six fractional digits must survive)", rec, m.Timestamp, recd.Time)
		}
		rec++
	}
	if rec != 16 || cp != 2 {
		t.Fatalf("rsyslog got %d records and %d checkpoints, want 16 and 2", rec, cp)
	}
	dups := checkInOrder(t, seqs(t, r.messages()), 18)
	if dups != 0 {
		t.Errorf("%d messages re-sent although they were confirmed before rsyslogd was killed", dups)
	}
	t.Logf("rsyslog got 16 records and 2 checkpoints in order; %d duplicates re-sent after the restart; stats %+v", dups, f.Stats())

	// Mutual TLS: a client without a certificate is refused (seen on the
	// next read with TLS 1.3) and its message never lands.
	c, err := tls.Dial("tcp", r.addr, &tls.Config{RootCAs: p.Pool})
	if err == nil {
		c.Write(syslog.AppendFrame(nil, []byte("<110>1 - - fuseline - nocert - intruder")))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, rerr := c.Read(make([]byte, 1))
		c.Close()
		if rerr == nil || errors.Is(rerr, os.ErrDeadlineExceeded) {
			t.Fatalf("rsyslog did not refuse a client without a certificate: %v", rerr)
		}
	}
	time.Sleep(300 * time.Millisecond)
	for _, m := range r.messages() {
		if m.MsgID != nil && *m.MsgID == "nocert" {
			t.Fatal("a message from a client without a certificate reached raw.log")
		}
	}
}

// distinct drops re-sent duplicates (same meta sequenceId), keeping first
// arrivals in order.
func distinct(t testing.TB, ms []*rfc5424.SyslogMessage) []*rfc5424.SyslogMessage {
	seen := map[int]bool{}
	var out []*rfc5424.SyslogMessage
	for i, s := range seqs(t, ms) {
		if !seen[s] {
			seen[s] = true
			out = append(out, ms[i])
		}
	}
	return out
}

func readLog(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
