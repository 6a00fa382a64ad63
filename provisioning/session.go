package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"fuseline/internal/atomicfile"
	"fuseline/reports/audit"
)

// SessionFile is where a station remembers who ran it last and with which
// recipe, in its data directory, so the audit log can say when an operator
// signed in and when the configuration changed.
const SessionFile = "station-session.json"

// Session is what a station run starts from: who operates it and with which
// recipe.
type Session struct {
	Station    string
	Operator   string
	RecipeName string
	RecipeSHA  string // hex SHA-256 of the recipe file as loaded
}

type sessionState struct {
	Operator   string `json:"operator"`
	RecipeName string `json:"recipe_name"`
	RecipeSHA  string `json:"recipe_sha256"`
}

// BeginSession records the station-level audit events of design.md's audit
// list that belong to no board: an operator.signin when the operator differs
// from the last one recorded in dataDir (a shift change, or the first run),
// and a config.change when the recipe differs from the last one used (its
// hash from → to). The state is saved only after the records are written.
func BeginSession(ctx context.Context, log *audit.Log, dataDir string, s Session) error {
	path := filepath.Join(dataDir, SessionFile)
	var last sessionState
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("provisioning: station session: %w", err)
	default:
		if err := json.Unmarshal(b, &last); err != nil {
			return fmt.Errorf("provisioning: station session %s: %w", path, err)
		}
	}
	if s.Operator != last.Operator {
		d := audit.Details{"station": s.Station}
		if last.Operator != "" {
			d["previous_operator"] = last.Operator
		}
		if _, err := log.Append(ctx, audit.Entry{Operator: s.Operator, Event: audit.EventOperatorSignIn, Result: audit.ResultInfo, Details: d}); err != nil {
			return fmt.Errorf("provisioning: audit: %w", err)
		}
	}
	if s.RecipeSHA != last.RecipeSHA {
		d := audit.Details{"what": "recipe", "recipe": s.RecipeName, "recipe_sha256": s.RecipeSHA}
		if last.RecipeSHA != "" {
			d["previous_recipe_sha256"] = last.RecipeSHA
		}
		if _, err := log.Append(ctx, audit.Entry{Operator: s.Operator, Event: audit.EventConfigChange, Result: audit.ResultInfo, Details: d}); err != nil {
			return fmt.Errorf("provisioning: audit: %w", err)
		}
	}
	out, err := json.MarshalIndent(sessionState{Operator: s.Operator, RecipeName: s.RecipeName, RecipeSHA: s.RecipeSHA}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, append(out, '\n'), 0o644); err != nil {
		return fmt.Errorf("provisioning: station session: %w", err)
	}
	return nil
}

// AuditIntakeRefused records a release refused at intake, before any board
// was touched: which file and why, in the intake error's own short words.
func AuditIntakeRefused(ctx context.Context, log *audit.Log, operator, recipeSHA string, err error) error {
	d := audit.Details{"recipe_sha256": recipeSHA, "reason": "release refused"}
	if ie, ok := errors.AsType[*IntakeError](err); ok {
		d["reason"] = ie.Reason
		if ie.File != "" {
			d["file"] = ie.File
		}
	}
	if _, err := log.Append(ctx, audit.Entry{Operator: operator, Event: audit.EventIntake, Result: audit.ResultRefused, Details: d}); err != nil {
		return fmt.Errorf("provisioning: audit: %w", err)
	}
	return nil
}
