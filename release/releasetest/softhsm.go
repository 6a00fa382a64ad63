package releasetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// SoftHSM is a SoftHSM2 token in a private directory, set up with the
// Debian tools as docs/dependencies.md §3 describes. Tests must put Env()
// into their environment (t.Setenv) before loading the module, so tokens
// never land in /var/lib/softhsm.
type SoftHSM struct {
	Dir    string // holds softhsm2.conf and tokens/
	Conf   string // the SOFTHSM2_CONF path
	Module string // the PKCS#11 module
	Token  string // token label
	PIN    string
}

// ModulePaths are where Debian puts the SoftHSM2 module.
func ModulePaths() []string {
	return []string{"/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so", "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"}
}

// SoftHSMMissing returns why a SoftHSM2 test cannot run here, or "".
func SoftHSMMissing() string {
	for _, tool := range []string{"softhsm2-util", "pkcs11-tool"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not on PATH (apt-get install softhsm2 opensc)"
		}
	}
	for _, p := range ModulePaths() {
		if _, err := os.Stat(p); err == nil {
			return ""
		}
	}
	return "libsofthsm2.so not found (apt-get install softhsm2)"
}

// NewSoftHSM initialises token "station" (PIN 123456) in dir.
func NewSoftHSM(ctx context.Context, dir string) (*SoftHSM, error) {
	if why := SoftHSMMissing(); why != "" {
		return nil, errors.New(why)
	}
	h := &SoftHSM{Dir: dir, Conf: filepath.Join(dir, "softhsm2.conf"), Token: "station", PIN: "123456"}
	for _, p := range ModulePaths() {
		if _, err := os.Stat(p); err == nil {
			h.Module = p
			break
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf("directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n", dir)
	if err := os.WriteFile(h.Conf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if err := h.run(ctx, "softhsm2-util", "--init-token", "--free", "--label", h.Token, "--pin", h.PIN, "--so-pin", "654321"); err != nil {
		return nil, err
	}
	return h, nil
}

// Env is the environment entry the module needs.
func (h *SoftHSM) Env() (key, value string) { return "SOFTHSM2_CONF", h.Conf }

// GenerateKey makes a key pair on the token with pkcs11-tool: keyType is
// "EC:prime256v1" or "rsa:3072".
func (h *SoftHSM) GenerateKey(ctx context.Context, keyType, label, id string) error {
	return h.run(ctx, "pkcs11-tool", "--module", h.Module, "--token-label", h.Token, "--login", "--pin", h.PIN,
		"--keypairgen", "--key-type", keyType, "--label", label, "--id", id)
}

// URI is the RFC 7512 URI of the object label on this token, with the PIN
// when withPIN.
func (h *SoftHSM) URI(label string, withPIN bool) string {
	u := fmt.Sprintf("pkcs11:token=%s;object=%s?module-path=%s", h.Token, label, h.Module)
	if withPIN {
		u += "&pin-value=" + h.PIN
	}
	return u
}

func (h *SoftHSM) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+h.Conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("releasetest: %s: %w: %s", name, err, out)
	}
	return nil
}
