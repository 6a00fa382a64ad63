package specs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"

	"fuseline/fixtures"
)

// targetEnv is what the target gate reads of the host; hostEnv is the real
// one.
type targetEnv struct {
	LookPath func(file string) (string, error)
	Getenv   func(key string) string
	ReadFile func(name string) ([]byte, error)
}

func hostEnv() targetEnv {
	return targetEnv{LookPath: exec.LookPath, Getenv: os.Getenv, ReadFile: os.ReadFile}
}

// qemuHelp says where Espressif's QEMU comes from.
const qemuHelp = "install Espressif's QEMU (https://github.com/espressif/qemu/releases, or `python $IDF_PATH/tools/idf_tools.py install qemu-xtensa qemu-riscv32`) " +
	"and put qemu-system-xtensa on PATH or its path in FUSELINE_QEMU"

// checkTarget says why the suite cannot test boards on target, or nil when
// it can. A target that cannot run fails the suite with this reason in
// BeforeSuite: a QA job asked for QEMU or a fixture must go red, not green
// with every spec skipped. fixture and slot are the -fixture and -slot
// flags (FIXTURE= and SLOT= of `make specs`).
func checkTarget(target, fixture, slot string, env targetEnv) error {
	switch target {
	case "virtual":
		return nil
	case "qemu":
		bin := env.Getenv("FUSELINE_QEMU")
		if bin != "" {
			if _, err := env.LookPath(bin); err != nil {
				return fmt.Errorf("target qemu: FUSELINE_QEMU=%s is not an executable: %v; %s", bin, err, qemuHelp)
			}
		} else {
			var err error
			if bin, err = env.LookPath("qemu-system-xtensa"); err != nil {
				return fmt.Errorf("target qemu: qemu-system-xtensa not found on PATH or FUSELINE_QEMU; %s", qemuHelp)
			}
		}
		// Found, but nothing in this suite starts it yet (design.md
		// "Targets for specs": the qemu/ launcher): every spec would test
		// nothing.
		return fmt.Errorf("target qemu: %s is installed, but these specs cannot drive QEMU yet (Fuseline has no QEMU launcher); nothing would be tested: run TARGET=virtual", bin)
	case "board":
		if fixture == "" || slot == "" {
			return errors.New("target board: FIXTURE=… and SLOT=… are required (make specs TARGET=board FIXTURE=fixture.yaml SLOT=slot1, or -fixture and -slot)")
		}
		b, err := env.ReadFile(fixture)
		if err != nil {
			return fmt.Errorf("target board: FIXTURE: %w", err)
		}
		f, err := fixtures.ParseFile(b)
		if err != nil {
			return fmt.Errorf("target board: %s: %w", fixture, err)
		}
		if _, err := f.Slot(slot); err != nil {
			return fmt.Errorf("target board: %s: %w", fixture, err)
		}
		return fmt.Errorf("target board: slot %s of %s is there, but these specs cannot drive a fixture slot yet; nothing would be tested: check the slot with `FUSELINE_FIXTURE=%s FUSELINE_SLOT=%s go test ./fixtures -run RealSlot`",
			slot, fixture, fixture, slot)
	}
	return fmt.Errorf("-target must be virtual, qemu or board, got %q", target)
}
