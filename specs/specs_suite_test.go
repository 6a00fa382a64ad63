// Package specs holds Fuseline's Ginkgo suites: the end-of-line flow run the
// way QA re-proves a board (design.md "Targets for specs", style.md
// practice 14), against the virtual board by default.
//
// Run them with `go test ./specs/...`; Ginkgo flags take a -ginkgo. prefix
// (`go test ./specs -ginkgo.label-filter='esp32c3 && !slow'
// -ginkgo.junit-report=junit.xml`). The suite flag -target chooses where the
// boards are: virtual (default, in-process, everywhere), qemu or board (not
// wired in this suite yet: those specs are skipped with the reason).
package specs

import (
	"flag"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// target is the suite flag -target (Ginkgo's documented way: flags are
// registered with the test binary and checked in BeforeSuite).
var target = flag.String("target", "virtual", "where boards are: virtual, qemu or board")

func TestSpecs(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Fuseline end-of-line specs")
}

var _ = BeforeSuite(func() {
	switch *target {
	case "virtual":
	case "qemu", "board":
		Skip("-target=" + *target + ": this suite drives the virtual board only so far; qemu and board targets are not wired")
	default:
		Fail("-target must be virtual, qemu or board, got " + *target)
	}
})
