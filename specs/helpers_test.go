package specs

import (
	"context"
	"crypto/rsa"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/esp/flashenc"
	"fuseline/esp/secureboot"
	"fuseline/fixtures/virtual"
	"fuseline/fixtures/virtual/boot"
	"fuseline/provisioning"
	"fuseline/provisioning/recipe"
	"fuseline/provisioning/sim"
	"fuseline/provisioning/workspace"
	"fuseline/reports/audit"
)

// testKeys are the espsecure-made RSA-3072 keys of testdata.
func testKeys() []*rsa.PrivateKey {
	var out []*rsa.PrivateKey
	for _, n := range []string{"key1.pem", "key2.pem"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		Expect(err).NotTo(HaveOccurred())
		k, err := secureboot.ParsePrivateKeyPEM(b)
		Expect(err).NotTo(HaveOccurred())
		out = append(out, k)
	}
	return out
}

// station is one slot of a virtual station: a workspace (keys, release,
// recipe), the station data directory with its audit log, and a board
// whose eFuses and flash persist in a state directory (so it can be power
// cycled).
type station struct {
	dir   string
	ws    *workspace.Workspace
	r     *recipe.Recipe
	rel   *provisioning.Release
	data  string
	state string
	board *sim.Board
	log   *audit.Log
}

// keyRand draws a fixed device key, so an interrupted run and an
// uninterrupted one must end in identical eFuses.
type keyRand byte

func (k keyRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(k) ^ byte(i*13)
	}
	return len(p), nil
}

// newStation builds a station for chip c in write mode m; o may vary the
// workspace. The board starts blank. Cleanup is registered.
func newStation(ctx context.Context, c chip.Chip, m recipe.WriteMode, o workspace.Options) *station {
	GinkgoHelper()
	s := &station{dir: GinkgoT().TempDir()}
	o.Dir, o.Chip = filepath.Join(s.dir, "ws"), c
	if o.Keys == nil {
		o.Keys = testKeys()[:1]
	}
	if o.Recipe.WriteMode == "" {
		o.Recipe.WriteMode = m
	}
	if o.SecureVersion == 0 && o.Recipe.Floor == 0 {
		o.SecureVersion, o.Recipe.Floor = 2, 1
	}
	var err error
	s.ws, err = workspace.Create(ctx, o)
	Expect(err).NotTo(HaveOccurred())
	s.r, err = recipe.Load(s.ws.RecipePath)
	Expect(err).NotTo(HaveOccurred())
	s.rel, err = provisioning.Intake(ctx, s.r, provisioning.IntakeOptions{})
	Expect(err).NotTo(HaveOccurred())
	s.data, s.state = filepath.Join(s.dir, "data"), filepath.Join(s.dir, "board")
	s.powerOn(virtual.Config{})
	s.log, err = audit.Open(ctx, audit.Config{Dir: s.data, Station: "spec-station"})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		s.board.Close()
		s.log.Close(context.Background())
	})
	return s
}

// powerOn starts the board from its state directory (a power cycle when it
// ran before); extra may add faults.
func (s *station) powerOn(extra virtual.Config) {
	GinkgoHelper()
	cfg := extra
	cfg.Chip, cfg.StateDir = s.r.Chip, s.state
	b, err := sim.New(cfg)
	Expect(err).NotTo(HaveOccurred())
	s.board = b
}

// powerCycle cuts the power and brings the board back from its saved state.
func (s *station) powerCycle(extra virtual.Config) {
	GinkgoHelper()
	s.board.Close()
	s.powerOn(extra)
}

func (s *station) config() provisioning.Config {
	return provisioning.Config{Recipe: s.r, Release: s.rel, DataDir: s.data, Station: "spec-station", Slot: "slot1",
		Operator: "qa", Target: *target, Audit: s.log, Probe: s.board, Rand: keyRand(0x5A)}
}

func (s *station) run(ctx context.Context) (*provisioning.Result, error) {
	return provisioning.Run(ctx, s.board, s.config())
}

// bootToBanner resets the board into SPI boot and returns its UART output
// once the app's running banner appears.
func (s *station) bootToBanner(ctx context.Context) string {
	GinkgoHelper()
	var app *provisioning.Image
	for i := range s.rel.Images {
		if s.rel.Images[i].App != nil {
			app = &s.rel.Images[i]
		}
	}
	Expect(app).NotTo(BeNil())
	want := boot.RunningBanner(app.App.ProjectName, app.App.Version)
	Expect(s.board.SetBaud(115200)).To(Succeed())
	Expect(s.board.Reset(ctx, chip.BootSPI)).To(Succeed())
	deadline := time.Now().Add(10 * time.Second)
	var out strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(out.String(), want) {
		Expect(s.board.SetReadDeadline(deadline)).To(Succeed())
		n, err := s.board.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	Expect(out.String()).To(ContainSubstring(want), "boot log:\n%s", out.String())
	return out.String()
}

// deviceKey reads the flash-encryption key out of the board's physical
// eFuses (what only a decapped chip shows), to check the flash from the
// outside: on S3/C3 the key blocks by their purposes, on classic ESP32
// BLOCK1 with the FLASH_CRYPT_CONFIG tweak setting the chip applies (§5.3).
func (s *station) deviceKey() flashenc.Cipher {
	GinkgoHelper()
	phys := s.board.V.Efuse()
	scheme := s.r.FlashEncryption.Scheme
	var blocks [][32]byte
	var cryptConfig uint8 // ignored by the XTS schemes
	if s.r.Chip.ID == chip.ESP32 {
		raw, err := phys.GetBytes("BLOCK1")
		Expect(err).NotTo(HaveOccurred())
		Expect(raw).To(HaveLen(32))
		blocks = append(blocks, [32]byte(raw))
		cfg, err := phys.Get("FLASH_CRYPT_CONFIG")
		Expect(err).NotTo(HaveOccurred())
		cryptConfig = uint8(cfg)
	} else {
		ps, err := phys.KeyPurposes()
		Expect(err).NotTo(HaveOccurred())
		for _, want := range []efuse.Purpose{efuse.PurposeXTSAES128Key, efuse.PurposeXTSAES256Key1, efuse.PurposeXTSAES256Key2} {
			for n, p := range ps {
				if p == want {
					raw, err := phys.GetBytes(blockName(n))
					Expect(err).NotTo(HaveOccurred())
					Expect(raw).To(HaveLen(32))
					blocks = append(blocks, [32]byte(raw))
				}
			}
		}
	}
	key, err := flashenc.KeyFromBlocks(scheme, blocks...)
	Expect(err).NotTo(HaveOccurred())
	c, err := flashenc.New(scheme, key, cryptConfig)
	Expect(err).NotTo(HaveOccurred())
	return c
}

func blockName(n int) string { return "BLOCK_KEY" + string(rune('0'+n)) }
