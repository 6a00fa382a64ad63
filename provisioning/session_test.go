package provisioning

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fuseline/reports/audit"
)

func TestBeginSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	log, err := audit.Open(ctx, audit.Config{Dir: dir, Station: "st-01"})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close(ctx)
	steps := []struct {
		name string
		s    Session
		want []audit.Event // appended by this call, in order
	}{
		{"first run", Session{Station: "st-01", Operator: "alice", RecipeName: "p", RecipeSHA: "aa"}, []audit.Event{audit.EventOperatorSignIn, audit.EventConfigChange}},
		{"same operator and recipe", Session{Station: "st-01", Operator: "alice", RecipeName: "p", RecipeSHA: "aa"}, nil},
		{"shift change", Session{Station: "st-01", Operator: "bob", RecipeName: "p", RecipeSHA: "aa"}, []audit.Event{audit.EventOperatorSignIn}},
		{"recipe edited", Session{Station: "st-01", Operator: "bob", RecipeName: "p", RecipeSHA: "bb"}, []audit.Event{audit.EventConfigChange}},
	}
	for _, st := range steps {
		before := log.Size()
		if err := BeginSession(ctx, log, dir, st.s); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		recs := readAudit(t, dir)[before:]
		if len(recs) != len(st.want) {
			t.Fatalf("%s: %d records, want %v", st.name, len(recs), st.want)
		}
		for i, r := range recs {
			if r.Event != st.want[i] || r.Operator != st.s.Operator || r.Result != audit.ResultInfo {
				t.Errorf("%s: record %d = %s by %s (%s), want %s by %s", st.name, i, r.Event, r.Operator, r.Result, st.want[i], st.s.Operator)
			}
		}
	}
	last := readAudit(t, dir)
	if d := last[len(last)-1].Details; d["previous_recipe_sha256"] != "aa" || d["recipe_sha256"] != "bb" {
		t.Errorf("config change details %v", d)
	}
	// A damaged state file stops the run rather than hiding a sign-in.
	if err := os.WriteFile(filepath.Join(dir, SessionFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := BeginSession(ctx, log, dir, steps[0].s); err == nil {
		t.Error("a damaged station-session file was accepted")
	}
}

func TestAuditIntakeRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	log, err := audit.Open(ctx, audit.Config{Dir: dir, Station: "st-01"})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close(ctx)
	refusal := &IntakeError{File: "app.bin", Reason: "signed by a key that is not in the recipe", Err: errors.New("x")}
	if err := AuditIntakeRefused(ctx, log, "alice", "aa", refusal); err != nil {
		t.Fatal(err)
	}
	recs := readAudit(t, dir)
	r := recs[len(recs)-1]
	if r.Event != audit.EventIntake || r.Result != audit.ResultRefused || r.Device != "" ||
		r.Details["file"] != "app.bin" || !strings.Contains(r.Details["reason"], "not in the recipe") {
		t.Errorf("record %+v", r)
	}
}

func readAudit(t *testing.T, dir string) []*audit.Record {
	t.Helper()
	b, err := os.ReadFile(audit.NewLayout(dir).Log)
	if err != nil {
		t.Fatal(err)
	}
	var out []*audit.Record
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		r, err := audit.ParseRecord([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}
