// Package specs holds Fuseline's Ginkgo suites: the end-of-line flow run the
// way QA re-proves a board (design.md "Targets for specs", style.md
// practice 14), against the virtual board by default.
//
// Run them with `go test ./specs/...`; Ginkgo flags take a -ginkgo. prefix
// (`go test ./specs -ginkgo.label-filter='esp32c3 && !slow'
// -ginkgo.junit-report=junit.xml`). The suite flag -target chooses where the
// boards are: virtual (default, in-process, everywhere), qemu or board. The
// specs drive the virtual board only so far: -target=qemu and -target=board
// fail the suite in BeforeSuite with the reason (QEMU not installed, no
// -fixture/-slot, or not wired yet), never a green run that tested nothing.
// The target is in the suite's name (every JUnit test case's classname) and
// in a "target" report entry of every spec that ran.
package specs

import (
	"flag"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The suite flags (Ginkgo's documented way: flags are registered with the
// test binary and checked in BeforeSuite).
var (
	target  = flag.String("target", "virtual", "where boards are: virtual, qemu or board")
	fixture = flag.String("fixture", "", "target board: the fixture file (FIXTURE= of make specs)")
	slot    = flag.String("slot", "", "target board: the fixture slot (SLOT= of make specs)")
)

// suiteName is the suite's description for target t.
func suiteName(t string) string { return "Fuseline end-of-line specs, target " + t }

func TestSpecs(t *testing.T) {
	RegisterFailHandler(Fail)
	// A run that selects no spec, or leaves one pending, tested nothing:
	// it fails rather than going green.
	sc, rc := GinkgoConfiguration()
	sc.FailOnEmpty, sc.FailOnPending = true, true
	RunSpecs(t, suiteName(*target), sc, rc)
}

var _ = BeforeSuite(func() {
	if err := checkTarget(*target, *fixture, *slot, hostEnv()); err != nil {
		Fail(err.Error())
	}
})

var _ = BeforeEach(func() {
	AddReportEntry("target", *target, ReportEntryVisibilityNever)
})
