package flashenc

import (
	"bytes"
	"crypto/aes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/xts"

	"fuseline/esp/chip"
)

func load(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustNew(t testing.TB, s chip.Encryption, key []byte, cfg uint8) Cipher {
	t.Helper()
	c, err := New(s, key, cfg)
	if err != nil {
		t.Fatalf("New(%v): %v", s, err)
	}
	return c
}

// TestXTSVectors reproduces every espsecure ciphertext in testdata byte for
// byte, and decrypts it back, out of place and in place.
func TestXTSVectors(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/enc-*.bin")
	// The 10 shared vectors plus the unaligned-address one (README).
	if err != nil || len(files) != 11 {
		t.Fatalf("want the 11 espsecure XTS vectors, found %d (%v)", len(files), err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// enc-KEY-PLAIN-ADDR.bin
			parts := strings.Split(strings.TrimSuffix(strings.TrimPrefix(name, "enc-"), ".bin"), "-")
			if len(parts) != 4 {
				t.Fatalf("unexpected name %q", name)
			}
			key := load(t, parts[0]+".bin")
			plain := load(t, "plain-"+parts[2]+".bin")
			addr, err := strconv.ParseUint(parts[3], 0, 32)
			if err != nil {
				t.Fatal(err)
			}
			want := load(t, name)
			scheme := chip.XTSAES128
			if len(key) == 64 {
				scheme = chip.XTSAES256
			}
			c := mustNew(t, scheme, key, 0)

			got := make([]byte, len(plain))
			if err := c.Encrypt(got, plain, uint32(addr)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("ciphertext differs from espsecure's at byte %d", firstDiff(got, want))
			}
			back := bytes.Clone(want)
			if err := c.Decrypt(back, back, uint32(addr)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, plain) {
				t.Fatalf("in-place decryption differs at byte %d", firstDiff(back, plain))
			}
			inPlace := bytes.Clone(plain)
			if err := c.Encrypt(inPlace, inPlace, uint32(addr)); err != nil || !bytes.Equal(inPlace, want) {
				t.Fatalf("in-place encryption: %v", err)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestClassicVectors reproduces espsecure's classic-ESP32 ciphertext for a
// whole 8 KiB at other addresses and FLASH_CRYPT_CONFIG values than §8.
func TestClassicVectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file   string
		addr   uint32
		config uint8
	}{
		{"esp32-key256-plain-8k-0x10010-cfg0x5.bin", 0x10010, 0x5},
		{"esp32-key256-plain-8k-0x3f0020-cfg0xF.bin", 0x3f0020, 0xF},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			c := mustNew(t, chip.AES256Classic, load(t, "key256.bin"), tc.config)
			plain, want := load(t, "plain-8k.bin"), load(t, tc.file)
			got := make([]byte, len(plain))
			if err := c.Encrypt(got, plain, tc.addr); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("ciphertext differs from espsecure's at byte %d", firstDiff(got, want))
			}
			if err := c.Decrypt(got, got, tc.addr); err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("decrypt in place: %v", err)
			}
		})
	}
}

// TestKnownAnswers: the vectors of esp-security-facts.md §8.
func TestKnownAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		scheme chip.Encryption
		key    []byte
		config uint8
		addr   uint32
		plain  []byte
		want   string
	}{
		{"xts key32 0x10000", chip.XTSAES128, seq(32), 0, 0x10000, seq(128), `
			2c2a288e9e96647587883012b81d17396a80540eebdd2f9e323e7017d6d650de
			85f9cf9ddaf2b7305d5d979d8eeb5c59417a69f0edda6d92f7085e228a6cda84
			1c2bb5568a7565205c4ae3708ba3554824880706cd62f7ad4c48d6569bc67169
			806d15e666da7ec7271d3e2f6b2b18c423cd8de5f72afcda58ee8fed7add2ae0`},
		{"xts key64 0x10000", chip.XTSAES256, seq(64), 0, 0x10000, seq(128), `
			ed032950be116e860729b191d93e3cc2541e5722eec0a990b48e4eb691b0acf5
			1af25657c4eb266eb201583254151c2fe5f797b44e38a2971b56fed59a4773df
			1eb38c681241e42d81b1bbc8ff3081ed922b5f2d0692b3eca0c409192262af69
			c966f8ff1947cbf5ded6d635149c13363341544f3ff5a79fd038a5637e016f3d`},
		{"xts key32 0x10080", chip.XTSAES128, seq(32), 0, 0x10080, seq(128), `
			38e0f4d7cada78038eb03c2da25a063147fdd944d540758494b0b732c6771a9e
			e34bb3d7dd785cb4187d0e890663074663a4c2638a3a65652fa9abd2548705b8
			cbf1c89eee8a926a0813c12b7a333d7c3633e60f3930e6ba7a77cb6c41400cb7
			e23c7235513f04e43d533d4f7f6e6084e6282650403e7ff35e011457b0099251`},
		{"esp32 0xF 0x1000", chip.AES256Classic, seq(32), 0xF, 0x1000, seq(32),
			"a354ea55e9d9d83cd027e80a6b03a53cfc3886d3f8090e2da27c51dbc4a61351"},
		{"esp32 0xF 0x1020", chip.AES256Classic, seq(32), 0xF, 0x1020, seq(32),
			"51a7cdb27dbc91a9fe8e6e70969c056b8a04915155779df4e4652aef78d92e5b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := mustNew(t, tc.scheme, tc.key, tc.config)
			got := make([]byte, len(tc.plain))
			if err := c.Encrypt(got, tc.plain, tc.addr); err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tc.want); !bytes.Equal(got, want) {
				t.Fatalf("got  %x\nwant %x", got, want)
			}
			back := make([]byte, len(got))
			if err := c.Decrypt(back, got, tc.addr); err != nil || !bytes.Equal(back, tc.plain) {
				t.Fatalf("decrypt: %v, %x", err, back)
			}
		})
	}
}

// TestPiecewise: encrypting a range in 16-aligned pieces of any size, each
// at its own address (so XTS units are cut anywhere), gives the same bytes
// as one call; for XTS that is espsecure's output, padding included.
func TestPiecewise(t *testing.T) {
	t.Parallel()
	plain := load(t, "plain-8k.bin")
	tests := []struct {
		name   string
		scheme chip.Encryption
		key    []byte
		config uint8
		addr   uint32
		want   []byte // nil: compare with a single call
	}{
		{"xts-128 vs espsecure", chip.XTSAES128, load(t, "key256.bin"), 0, 0x1f0080, load(t, "enc-key256-plain-8k-0x1f0080.bin")},
		{"xts-256 vs espsecure", chip.XTSAES256, load(t, "key512.bin"), 0, 0x8000, load(t, "enc-key512-plain-8k-0x8000.bin")},
		{"classic 0xF", chip.AES256Classic, load(t, "key256.bin"), 0xF, 0x1000, nil},
		{"classic 0x5", chip.AES256Classic, load(t, "key256.bin"), 0x5, 0x10010, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := mustNew(t, tc.scheme, tc.key, tc.config)
			want := tc.want
			if want == nil {
				want = make([]byte, len(plain))
				if err := c.Encrypt(want, plain, tc.addr); err != nil {
					t.Fatal(err)
				}
			}
			rng := rand.New(rand.NewPCG(1, uint64(tc.addr)))
			for round := range 20 {
				got := make([]byte, len(plain))
				for off := 0; off < len(plain); {
					n := min(16*(1+rng.IntN(20)), len(plain)-off)
					if err := c.Encrypt(got[off:off+n], plain[off:off+n], tc.addr+uint32(off)); err != nil {
						t.Fatal(err)
					}
					off += n
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("round %d: piecewise ciphertext differs at byte %d", round, firstDiff(got, want))
				}
			}
		})
	}
}

// TestRoundTrip: for random keys, addresses and lengths, Decrypt undoes
// Encrypt, the ciphertext differs from the plaintext, and moving the
// address changes the ciphertext.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		scheme chip.Encryption
		keyLen int
	}{
		{chip.XTSAES128, 32}, {chip.XTSAES256, 64}, {chip.AES256Classic, 32}, {chip.AES256Classic, 24},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%v/%d", tc.scheme, tc.keyLen), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(uint64(tc.scheme), uint64(tc.keyLen)))
			for range 200 {
				key := make([]byte, tc.keyLen)
				for i := range key {
					key[i] = byte(rng.Uint32())
				}
				c := mustNew(t, tc.scheme, key, uint8(1+rng.IntN(15))) // 0 would disable the address tweak
				addr := uint32(rng.IntN(1<<24)) &^ 15
				plain := make([]byte, 16*(1+rng.IntN(64)))
				for i := range plain {
					plain[i] = byte(rng.Uint32())
				}
				ct := make([]byte, len(plain))
				if err := c.Encrypt(ct, plain, addr); err != nil {
					t.Fatal(err)
				}
				if bytes.Equal(ct, plain) {
					t.Fatal("ciphertext equals plaintext")
				}
				back := make([]byte, len(ct))
				if err := c.Decrypt(back, ct, addr); err != nil || !bytes.Equal(back, plain) {
					t.Fatalf("round trip at 0x%x, %d bytes: %v", addr, len(plain), err)
				}
				moved := make([]byte, len(plain))
				if err := c.Encrypt(moved, plain, addr^0x100000); err != nil {
					t.Fatal(err)
				}
				if bytes.Equal(moved, ct) {
					t.Fatalf("ciphertext at 0x%x equals the one at 0x%x", addr^0x100000, addr)
				}
			}
		})
	}
}

func TestClassicTweak(t *testing.T) {
	t.Parallel()
	key := seq(32)
	same := bytes.Repeat([]byte{0xA5}, 64) // two granules of equal plaintext
	enc := func(cfg uint8) []byte {
		out := make([]byte, len(same))
		if err := mustNew(t, chip.AES256Classic, key, cfg).Encrypt(out, same, 0x1000); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if c := enc(0); !bytes.Equal(c[:32], c[32:]) {
		t.Error("FLASH_CRYPT_CONFIG 0 must use one key for every granule")
	}
	if c := enc(0xF); bytes.Equal(c[:32], c[32:]) {
		t.Error("FLASH_CRYPT_CONFIG 0xF gives equal ciphertext for two granules")
	}
	// Within a granule both 16-byte blocks use the same key: equal
	// plaintext blocks give equal ciphertext blocks.
	if c := enc(0xF); !bytes.Equal(c[:16], c[16:32]) {
		t.Error("the two blocks of one granule used different keys")
	}
	// A 24-byte (3/4 coding) key is the 32-byte key file ‖ file[8:16].
	k24 := seq(24)
	k32 := append(bytes.Clone(k24), k24[8:16]...)
	a, b := make([]byte, 64), make([]byte, 64)
	mustNew(t, chip.AES256Classic, k24, 0xF).Encrypt(a, same, 0x2000)
	mustNew(t, chip.AES256Classic, k32, 0xF).Encrypt(b, same, 0x2000)
	if !bytes.Equal(a, b) {
		t.Error("24-byte key is not extended as file ‖ file[8:16]")
	}
	// The pattern has the run lengths of §5.3 and entries in 5…23.
	p, run := tweakPattern()
	var lens [4]int
	for n := range 256 {
		lens[run[n]]++
		if p[n] < 5 || p[n] > 23 {
			t.Fatalf("P[%d] = %d", n, p[n])
		}
	}
	if lens != [4]int{67, 65, 63, 61} {
		t.Errorf("run lengths %v, want [67 65 63 61]", lens)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	// A key whose hex would be easy to spot in a message.
	secret := bytes.Repeat([]byte{0xDE, 0xAD, 0xBE, 0xEF}, 16)
	xts128 := mustNew(t, chip.XTSAES128, secret[:32], 0)
	classic := mustNew(t, chip.AES256Classic, secret[:32], 0xF)
	buf := make([]byte, 64)
	tests := []struct {
		name    string
		err     error
		wantErr error
		wantMsg string
	}{
		{"xts unaligned address", xts128.Encrypt(buf, buf, 0x10008), ErrAlignment, "address 0x10008"},
		{"xts unaligned length", xts128.Decrypt(buf[:40], buf[:40], 0x10000), ErrAlignment, "length 40"},
		{"classic unaligned address", classic.Encrypt(buf, buf, 0x1001), ErrAlignment, "address 0x1001"},
		{"classic unaligned length", classic.Encrypt(buf[:17], buf[:17], 0x1000), ErrAlignment, "length 17"},
		{"short output", xts128.Encrypt(buf[:16], buf[:32], 0), nil, "shorter"},
		{"partial overlap", xts128.Encrypt(buf[16:48], buf[:32], 0), nil, "overlap"},
		{"past 4 GiB", classic.Encrypt(buf, buf, 0xFFFFFFF0), nil, "32-bit"},
		{"xts-128 16-byte key", newErr(chip.XTSAES128, secret[:16], 0), ErrKeyLength, "32-byte key, got 16"},
		{"xts-128 64-byte key", newErr(chip.XTSAES128, secret, 0), ErrKeyLength, "got 64"},
		{"xts-256 32-byte key", newErr(chip.XTSAES256, secret[:32], 0), ErrKeyLength, "64-byte key"},
		{"classic 16-byte key", newErr(chip.AES256Classic, secret[:16], 0xF), ErrKeyLength, "got 16"},
		{"classic config 0x10", newErr(chip.AES256Classic, secret[:32], 0x10), ErrScheme, "0x10"},
		{"unknown scheme", newErr(chip.Encryption(42), secret[:32], 0), ErrScheme, "encryption(42)"},
		{"key blocks, wrong length", blocksErr(chip.XTSAES256, secret[:32]), ErrKeyLength, "64-byte"},
		{"key from one block for 256", fromBlocksErr(chip.XTSAES256, [32]byte{}), ErrKeyLength, "2 key block"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.err == nil {
				t.Fatal("no error")
			}
			if tc.wantErr != nil && !errors.Is(tc.err, tc.wantErr) {
				t.Errorf("%v, want %v", tc.err, tc.wantErr)
			}
			msg := tc.err.Error()
			if !strings.Contains(msg, tc.wantMsg) || !strings.HasPrefix(msg, "flashenc: ") {
				t.Errorf("%q: want the package prefix and %q", msg, tc.wantMsg)
			}
			for _, leak := range []string{"dead", "DEAD", "\xde\xad", "222 173"} {
				if strings.Contains(msg, leak) {
					t.Errorf("%q leaks key bytes", msg)
				}
			}
		})
	}
}

func newErr(s chip.Encryption, key []byte, cfg uint8) error {
	_, err := New(s, key, cfg)
	return err
}

func blocksErr(s chip.Encryption, key []byte) error {
	_, err := KeyBlocks(s, key)
	return err
}

func fromBlocksErr(s chip.Encryption, blocks ...[32]byte) error {
	_, err := KeyFromBlocks(s, blocks...)
	return err
}

// TestKeyBlocks: the eFuse byte order of §2.5 and the worked examples of
// §2.2 (key file 00…1F reversed: PGM_DATA0 = 0x1C1D1E1F; the second half of
// a 64-byte key 00…3F: PGM_DATA0 = 0x3C3D3E3F).
func TestKeyBlocks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		scheme chip.Encryption
		key    []byte
		words0 []uint32 // word 0 of each block
	}{
		{chip.XTSAES128, seq(32), []uint32{0x1C1D1E1F}},
		{chip.XTSAES256, seq(64), []uint32{0x1C1D1E1F, 0x3C3D3E3F}},
		{chip.AES256Classic, seq(32), []uint32{0x1C1D1E1F}},
		{chip.XTSAES128, load(t, "key256.bin"), nil},
		{chip.XTSAES256, load(t, "key512.bin"), nil},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprintf("%v/%d", tc.scheme, i), func(t *testing.T) {
			t.Parallel()
			blocks, err := KeyBlocks(tc.scheme, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if len(blocks) != len(tc.key)/32 {
				t.Fatalf("%d blocks", len(blocks))
			}
			for b, blk := range blocks {
				for j := range 32 {
					if blk[j] != tc.key[32*b+31-j] {
						t.Fatalf("block %d byte %d = %#x, want key byte %d", b, j, blk[j], 32*b+31-j)
					}
				}
				if tc.words0 != nil {
					if w := binary.LittleEndian.Uint32(blk[:]); w != tc.words0[b] {
						t.Errorf("block %d word 0 = %08X, want %08X", b, w, tc.words0[b])
					}
				}
			}
			key, err := KeyFromBlocks(tc.scheme, blocks...)
			if err != nil || !bytes.Equal(key, tc.key) {
				t.Errorf("KeyFromBlocks(KeyBlocks(k)) != k (%v)", err)
			}
		})
	}
}

// TestNoAllocs: whole units are encrypted in the caller's buffer, so a
// call allocates no more than plain x/crypto/xts over the same units (which
// takes its tweak buffer from a sync.Pool: nothing normally, more under
// -race); a call with partial units adds one 128-byte buffer at most.
func TestNoAllocs(t *testing.T) {
	c := mustNew(t, chip.XTSAES128, seq(32), 0)
	base, err := xts.NewCipher(aes.NewCipher, seq(32))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	floor := testing.AllocsPerRun(20, func() {
		for off := 0; off < len(buf); off += unitSize {
			base.Encrypt(buf[off:off+unitSize], buf[off:off+unitSize], uint64(off))
		}
	})
	if floor >= 1 {
		// -race makes sync.Pool drop items at random, so x/crypto/xts
		// allocates per sector and the count is noise.
		t.Skipf("x/crypto/xts alone allocates %.0f times per call here (-race?)", floor)
	}
	if n := testing.AllocsPerRun(20, func() { c.Encrypt(buf, buf, 0x10000) }); n > floor+0.5 {
		t.Errorf("aligned 64 KiB encryption: %.1f allocations per call, x/crypto/xts alone %.1f", n, floor)
	}
	if n := testing.AllocsPerRun(20, func() { c.Encrypt(buf[:len(buf)-32], buf[:len(buf)-32], 0x10030) }); n > floor+1.5 {
		t.Errorf("unaligned encryption: %.1f allocations per call, x/crypto/xts alone %.1f", n, floor)
	}
}
