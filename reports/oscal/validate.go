package oscal

import (
	"fmt"
	"strings"

	"github.com/defenseunicorns/go-oscal/src/pkg/validation"
)

// ValidationError lists where a document breaks the OSCAL schema.
type ValidationError struct {
	Problems []string // "JSON pointer: message", in the validator's order
	Err      error
}

func (e *ValidationError) Error() string {
	const show = 5
	p := e.Problems
	more := ""
	if len(p) > show {
		more = fmt.Sprintf(" (and %d more)", len(p)-show)
		p = p[:show]
	}
	return "oscal: document is not valid OSCAL: " + strings.Join(p, "; ") + more
}

func (e *ValidationError) Unwrap() error { return e.Err }

// Validate checks an OSCAL JSON document against the schema of the OSCAL
// version it declares.
func Validate(doc []byte) error {
	v, err := validation.NewValidator(doc)
	if err != nil {
		return fmt.Errorf("oscal: validate: %w", err)
	}
	err = v.Validate()
	if err == nil {
		return nil
	}
	res, rerr := v.GetValidationResult()
	ve := &ValidationError{Err: err}
	if rerr == nil {
		for _, e := range res.Errors {
			ve.Problems = append(ve.Problems, e.InstanceLocation+": "+e.Error)
		}
	}
	if len(ve.Problems) == 0 {
		ve.Problems = []string{err.Error()}
	}
	return ve
}
