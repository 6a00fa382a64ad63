package specs

import (
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"

	"fuseline/reports/iec62443"
)

// missingSpecs lists the "tested by" names of the matrix that are not the
// full text of an It in the suite's report.
func missingSpecs(m iec62443.Matrix, r Report) []string {
	names := map[string]bool{}
	for _, s := range r.SpecReports {
		if s.LeafNodeType == types.NodeTypeIt {
			names[s.FullText()] = true
		}
	}
	var out []string
	for _, req := range m.Requirements {
		for _, spec := range req.Specs {
			if !names[spec] {
				out = append(out, req.ID+": "+spec)
			}
		}
	}
	return slices.Compact(out)
}

// The IEC 62443 matrix tells an auditor which specs test each requirement:
// every name must be a spec of this suite, as its report (and JUnit) names
// it, so renaming a spec without the matrix fails the suite. Specs left out
// by a label filter are still in the report (as skipped).
var _ = ReportAfterSuite("the IEC 62443 matrix names only specs of this suite", func(r Report) {
	if missing := missingSpecs(iec62443.Fuseline(), r); len(missing) > 0 {
		Fail("reports/iec62443 names specs this suite does not have (rename them to the spec's full text):\n  " + strings.Join(missing, "\n  "))
	}
})
