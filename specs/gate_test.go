package specs

import (
	"encoding/xml"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/reporters"

	"fuseline/reports/iec62443"
)

// TestTargetGate: the suite's answer for each target and host.
func TestTargetGate(t *testing.T) {
	t.Parallel()
	fixtureYAML, err := os.ReadFile("../fixtures/testdata/fixture.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"fixture.yaml": fixtureYAML, "bad.yaml": []byte("slots: [")}
	env := func(path map[string]string, vars map[string]string) targetEnv {
		return targetEnv{
			LookPath: func(f string) (string, error) {
				if p, ok := path[f]; ok {
					return p, nil
				}
				return "", exec.ErrNotFound
			},
			Getenv: func(k string) string { return vars[k] },
			ReadFile: func(n string) ([]byte, error) {
				if b, ok := files[n]; ok {
					return b, nil
				}
				return nil, &fs.PathError{Op: "open", Path: n, Err: fs.ErrNotExist}
			},
		}
	}
	noQEMU := env(nil, nil)
	for _, tc := range []struct {
		name, target, fixture, slot string
		env                         targetEnv
		want                        []string // in the error; none: no error
	}{
		{"virtual", "virtual", "", "", noQEMU, nil},
		{"qemu not installed", "qemu", "", "", noQEMU, []string{"target qemu: qemu-system-xtensa not found on PATH or FUSELINE_QEMU", "install Espressif's QEMU"}},
		{"FUSELINE_QEMU not there", "qemu", "", "", env(nil, map[string]string{"FUSELINE_QEMU": "/opt/qemu/bin/qemu-system-xtensa"}),
			[]string{"FUSELINE_QEMU=/opt/qemu/bin/qemu-system-xtensa is not an executable"}},
		{"qemu installed", "qemu", "", "", env(map[string]string{"qemu-system-xtensa": "/usr/bin/qemu-system-xtensa"}, nil),
			[]string{"/usr/bin/qemu-system-xtensa is installed", "cannot drive QEMU yet", "nothing would be tested"}},
		{"board without fixture", "board", "", "", noQEMU, []string{"target board: FIXTURE=… and SLOT=… are required"}},
		{"board without slot", "board", "fixture.yaml", "", noQEMU, []string{"FIXTURE=… and SLOT=… are required"}},
		{"fixture missing", "board", "none.yaml", "slot1", noQEMU, []string{"target board: FIXTURE:", "none.yaml"}},
		{"fixture bad", "board", "bad.yaml", "slot1", noQEMU, []string{"target board: bad.yaml:"}},
		{"slot unknown", "board", "fixture.yaml", "slot9", noQEMU, []string{`no slot "slot9"`, "slot1"}},
		{"board ready", "board", "fixture.yaml", "slot1", noQEMU, []string{"slot slot1 of fixture.yaml", "cannot drive a fixture slot yet", "nothing would be tested"}},
		{"unknown target", "hil", "", "", noQEMU, []string{`-target must be virtual, qemu or board, got "hil"`}},
	} {
		err := checkTarget(tc.target, tc.fixture, tc.slot, tc.env)
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: no error: the suite would run and test nothing", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", tc.name, err, w)
			}
		}
	}
}

// runSuite runs this test binary's TestSpecs alone with args, on a host
// without QEMU (empty PATH, no FUSELINE_QEMU), and returns its exit error,
// its output and its JUnit report.
func runSuite(t *testing.T, args ...string) (error, string, *reporters.JUnitTestSuites) {
	t.Helper()
	junit := filepath.Join(t.TempDir(), "junit-specs.xml")
	cmd := exec.CommandContext(t.Context(), os.Args[0], append([]string{"-test.run=^TestSpecs$", "-ginkgo.no-color", "-ginkgo.junit-report=" + junit}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "FUSELINE_QEMU=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PATH="+t.TempDir())
	out, err := cmd.CombinedOutput()
	b, rerr := os.ReadFile(junit)
	if rerr != nil {
		t.Fatalf("no JUnit report (%v); exit %v:\n%s", rerr, err, out)
	}
	var rep reporters.JUnitTestSuites
	if err := xml.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return err, string(out), &rep
}

// A QA job that asks for a target the suite cannot run on goes red with
// the reason, and its JUnit says which target it was.
func TestSpecsTargetThatCannotRunFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		target, want string
	}{
		{"qemu", "target qemu: qemu-system-xtensa not found on PATH or FUSELINE_QEMU"},
		{"board", "target board: FIXTURE=… and SLOT=… are required"},
	} {
		err, out, rep := runSuite(t, "-target="+tc.target)
		if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() == 0 {
			t.Fatalf("-target=%s: exit %v, want a failure:\n%s", tc.target, err, out)
		}
		if !strings.Contains(out, tc.want) {
			t.Errorf("-target=%s: the output does not say %q:\n%s", tc.target, tc.want, out)
		}
		if len(rep.TestSuites) != 1 || rep.TestSuites[0].Name != suiteName(tc.target) || rep.TestSuites[0].Failures == 0 {
			t.Fatalf("-target=%s: JUnit suites %+v", tc.target, rep.TestSuites)
		}
		failed := false
		for _, c := range rep.TestSuites[0].TestCases {
			if c.Status == "passed" {
				t.Errorf("-target=%s: %s passed", tc.target, c.Name)
			}
			if c.Failure != nil && strings.Contains(c.Failure.Message, tc.want) {
				failed = true
			}
		}
		if !failed {
			t.Errorf("-target=%s: no JUnit failure says %q", tc.target, tc.want)
		}
	}
}

// The virtual target runs; JUnit names every spec with its target, and every
// spec the IEC 62443 matrix names is one of junit-specs.xml's test cases.
func TestSpecsJUnitNamesTargetAndMatrixSpecs(t *testing.T) {
	t.Parallel()
	err, out, rep := runSuite(t, "-target=virtual", "-ginkgo.label-filter=refusal")
	if err != nil {
		t.Fatalf("exit %v:\n%s", err, out)
	}
	if len(rep.TestSuites) != 1 {
		t.Fatalf("JUnit suites %+v", rep.TestSuites)
	}
	suite := rep.TestSuites[0]
	if suite.Name != suiteName("virtual") {
		t.Errorf("suite name %q", suite.Name)
	}
	names := map[string]bool{}
	ran := 0
	for _, c := range suite.TestCases {
		if c.Classname != suiteName("virtual") {
			t.Errorf("%s: classname %q does not name the target", c.Name, c.Classname)
		}
		// "[It] FULL TEXT [labels]"
		name, ok := strings.CutPrefix(c.Name, "[It] ")
		if !ok {
			continue
		}
		if c.Status == "passed" {
			ran++
			if c.Properties == nil || c.Properties.WithName("target") != `"virtual"` {
				t.Errorf("%s: no target report entry: %+v", c.Name, c.Properties)
			}
		}
		if i := strings.LastIndex(name, " ["); i >= 0 {
			name = name[:i]
		}
		names[name] = true
	}
	if ran == 0 {
		t.Fatal("no spec passed")
	}
	for _, req := range iec62443.Fuseline().Requirements {
		for _, s := range req.Specs {
			if !names[s] {
				t.Errorf("%s names %q, which is not a test case of junit-specs.xml", req.ID, s)
			}
		}
	}
}

// A selection that runs no spec tested nothing: the run fails.
func TestSpecsEmptySelectionFails(t *testing.T) {
	t.Parallel()
	err, out, _ := runSuite(t, "-target=virtual", "-ginkgo.label-filter=no-such-label")
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() == 0 || !strings.Contains(out, "no specs ran") {
		t.Fatalf("exit %v, want a failure saying no specs ran:\n%s", err, out)
	}
}
