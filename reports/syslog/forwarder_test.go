package syslog_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"fuseline/reports/syslog"
)

func fastConfig(addr string, p *testPKI, spool string) syslog.Config {
	return syslog.Config{
		Addr: addr, TLS: p.clientTLS(), Spool: spool,
		ConfirmAfter: 100 * time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		DialTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
	}
}

func msg(i int) syslog.Message {
	return syslog.Message{
		Facility: syslog.FacilityLogAudit, Severity: syslog.SeverityInfo, Time: time.Now(),
		Hostname: "st-01", AppName: "fuseline", MsgID: "test",
		Data: []syslog.Element{{ID: "t@32473", Params: []syslog.Param{{Name: "i", Value: fmt.Sprint(i)}}}},
		Msg:  fmt.Sprintf("message %d", i),
	}
}

func startRun(t *testing.T, f *syslog.Forwarder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not stop within 5 s of cancel")
		}
	})
}

// The SIEM goes away in the middle of a stream and comes back: everything
// arrives, first arrivals in order.
func TestForwarderAcrossSIEMRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newPKI(t)
	s := newSIEM(t, p, p.Pool)
	f, err := syslog.Open(ctx, fastConfig(s.addr, p, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	startRun(t, f)
	for i := 1; i <= 10; i++ {
		if err := f.Send(ctx, msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the first 10 messages", func() bool { return len(s.messages()) >= 10 })
	s.stop()
	for i := 11; i <= 20; i++ {
		if err := f.Send(ctx, msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(150 * time.Millisecond) // a few failed reconnects
	if st := f.Stats(); st.Confirmed >= 20 || st.Pending == 0 {
		t.Fatalf("confirmed %d with the SIEM down", st.Confirmed)
	}
	s.start()
	fctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := f.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	got := s.messages()
	checkInOrder(t, seqs(t, got), 20)
	for _, m := range got {
		if !strings.HasPrefix(*m.Message, "message ") || *m.Hostname != "st-01" || sd(m, "t@32473", "i") == "" {
			t.Fatalf("message mangled: %+v", m)
		}
	}
	if st := f.Stats(); st.Connects < 2 || st.Pending != 0 || st.Confirmed != 20 {
		t.Fatalf("stats %+v", st)
	}
}

// Messages spooled while the SIEM was unreachable survive the station
// process: a new Forwarder on the same spool delivers them.
func TestForwarderSpoolSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newPKI(t)
	s := newSIEM(t, p, p.Pool)
	s.stop()
	spool := t.TempDir()
	f, err := syslog.Open(ctx, fastConfig(s.addr, p, spool))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if err := f.Send(ctx, msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	s.start()
	f2, err := syslog.Open(ctx, fastConfig(s.addr, p, spool))
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if st := f2.Stats(); st.Pending != 5 || st.Spooled != 5 {
		t.Fatalf("reopened spool: %+v", st)
	}
	startRun(t, f2)
	if err := f2.Send(ctx, msg(6)); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := f2.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	if dups := checkInOrder(t, seqs(t, s.messages()), 6); dups != 0 {
		t.Fatalf("%d duplicates with no connection lost", dups)
	}
}

// A SIEM that refuses the station's certificate (another CA): with TLS 1.3
// the client only learns it on the next read, and nothing is confirmed.
func TestForwarderClientCertRejected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newPKI(t)
	other := newPKI(t)
	s := newSIEM(t, p, other.Pool) // trusts only the other CA's clients
	f, err := syslog.Open(ctx, fastConfig(s.addr, p, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	startRun(t, f)
	f.Send(ctx, msg(1))
	waitFor(t, 10*time.Second, "a connection error", func() bool { return f.Stats().LastError != "" })
	fctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := f.Flush(fctx); err == nil {
		t.Fatal("Flush succeeded against a SIEM that rejects the client certificate")
	}
	st := f.Stats()
	if st.Confirmed != 0 || len(s.messages()) != 0 {
		t.Fatalf("delivered despite rejection: %+v, SIEM got %d", st, len(s.messages()))
	}
	if !strings.Contains(st.LastError, "certificate") {
		t.Fatalf("last error %q does not say the certificate was refused", st.LastError)
	}
}

func TestForwarderSendRejectsMeta(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	f, err := syslog.Open(context.Background(), fastConfig("127.0.0.1:1", p, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := msg(1)
	m.Data = append(m.Data, syslog.Element{ID: "meta", Params: []syslog.Param{{Name: "sequenceId", Value: "9"}}})
	if err := f.Send(context.Background(), msg(0), m); err == nil {
		t.Fatal("Send accepted a message with its own meta element")
	}
	if st := f.Stats(); st.Spooled != 0 {
		t.Fatalf("a rejected batch was partly spooled: %+v", st)
	}
}

func TestOpenNeedsConfig(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	for _, cfg := range []syslog.Config{
		{TLS: p.clientTLS(), Spool: t.TempDir()},
		{Addr: "x:1", Spool: t.TempDir()},
		{Addr: "x:1", TLS: p.clientTLS()},
	} {
		if _, err := syslog.Open(context.Background(), cfg); err == nil {
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
}
