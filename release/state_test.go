package release_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fuseline/release"
)

func authFor(product, version string, secure uint32) *release.Authenticated {
	return &release.Authenticated{
		Manifest: &release.Manifest{Product: product, Version: version, SecureVersion: secure},
		Signer:   &x509.Certificate{Subject: pkix.Name{CommonName: "Line Signer"}},
	}
}

func TestStateCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	s := release.State{Dir: dir}
	if st, err := s.Load(); err != nil || len(st) != 0 {
		t.Fatalf("missing state: %v %v", st, err)
	}
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	steps := []struct {
		product, version string
		secure           uint32
		want             release.Reason
	}{
		{"demo", "1.0.0", 1, ""},
		{"demo", "1.1.0", 1, ""},
		{"other", "0.1.0", 0, ""}, // products are independent
		{"demo", "1.0.5", 1, "rollback"},
		{"demo", "1.1.0", 0, "rollback"},
		{"demo", "1.1.0", 1, ""}, // the same again is fine
		{"demo", "v2.0.0", 4, ""},
		{"demo", "2.0.0-rc.9", 4, "rollback"},
	}
	for i, st := range steps {
		a := authFor(st.product, st.version, st.secure)
		err := s.Check(a.Manifest)
		if err == nil {
			err = s.Commit(ctx, a, now)
		}
		re, _ := errors.AsType[*release.RefusedError](err)
		switch {
		case st.want == "" && err != nil:
			t.Fatalf("step %d %s %s: %v", i, st.product, st.version, err)
		case st.want != "" && (re == nil || re.Reason != st.want):
			t.Fatalf("step %d %s %s: err = %v, want %s", i, st.product, st.version, err, st.want)
		}
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got["demo"].Version != "v2.0.0" || got["demo"].SecureVersion != 4 || got["other"].Version != "0.1.0" ||
		got["demo"].Signer != "CN=Line Signer" || !got["demo"].Accepted.Equal(now) {
		t.Fatalf("state = %+v", got)
	}
	// Only the state and its lock remain: no temp files.
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "release-state.json,release-state.json.lock" {
		t.Fatalf("state dir holds %v", names)
	}
}

// Many slots accepting different versions at once: the floor ends at the
// newest, never lower.
func TestStateConcurrentCommits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := release.State{Dir: t.TempDir()}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			a := authFor("demo", fmt.Sprintf("1.%d.0", i), uint32(i/10))
			err := s.Commit(ctx, a, time.Now())
			if re, ok := errors.AsType[*release.RefusedError](err); err != nil && (!ok || re.Reason != release.ReasonRollback) {
				t.Errorf("commit 1.%d.0: %v", i, err)
			}
		})
	}
	wg.Wait()
	st, err := s.Load()
	if err != nil || st["demo"].Version != "1.39.0" || st["demo"].SecureVersion != 3 {
		t.Fatalf("state = %+v, %v", st, err)
	}
}

func TestStateDamaged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, release.StateName), []byte(`{"format":1,"products":{"demo":`), 0o600)
	s := release.State{Dir: dir}
	err := s.Check(&release.Manifest{Product: "demo", Version: "0.0.1"})
	if err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("err = %v", err)
	}
	if _, ok := errors.AsType[*release.RefusedError](err); ok {
		t.Fatal("a damaged state is a station fault, not a refusal of the release")
	}
	if err := s.Commit(context.Background(), authFor("demo", "9.0.0", 9), time.Now()); err == nil {
		t.Fatal("Commit overwrote a damaged state")
	}
}

func TestStateLockHonoursContext(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := release.State{Dir: dir}
	// Hold the lock from "another process" (another open file description).
	hold, err := os.OpenFile(filepath.Join(dir, release.StateName+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	if err := flock(hold); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = s.Commit(ctx, authFor("demo", "1.0.0", 0), time.Now())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline", err)
	}
}
