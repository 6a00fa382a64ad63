package flasher_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/esp/loader"
	"fuseline/flasher"
)

// withFake connects to a fakeChip inside a synctest bubble and runs fn.
func withFake(t *testing.T, f *fakeChip, fn func(t *testing.T, ctx context.Context, s *flasher.Session)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		host := f.start(t)
		defer host.Close()
		s, err := flasher.Connect(t.Context(), host, nil, flasher.Config{})
		if err != nil {
			t.Fatal(err)
		}
		fn(t, t.Context(), s)
	})
}

func keyProgram(block int, secret bool) flasher.BlockProgram {
	var w [8]uint32
	for i := range w {
		w[i] = 0x01020304*uint32(i+1) ^ uint32(block)<<24
	}
	return flasher.BlockProgram{Block: block, Words: w[:], Check: efuse.CheckWords(w), Secret: secret}
}

func TestReadEfuses(t *testing.T) {
	t.Parallel()
	for _, c := range []chip.Chip{chip.S3(), chip.C3(), chip.ESP32V3()} {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			f := newFakeChip(c)
			for b := range f.phys.Blocks {
				for w := range f.phys.Blocks[b] {
					f.phys.Blocks[b][w] = uint32(b<<8 | w)
				}
			}
			f.reload()
			withFake(t, f, func(t *testing.T, ctx context.Context, s *flasher.Session) {
				img, err := s.ReadEfuses(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !img.Equal(f.phys) {
					t.Fatalf("read %v\nwant %v", img.Blocks, f.phys.Blocks)
				}
			})
		})
	}
}

// READ_REG answers carry no checksum: a value changed on the line arrives
// in a good frame. ReadEfuses takes a word only when two reads in a row
// agree, so a flipped answer is read again, and a register whose answers
// never agree is an error (ErrReadUnstable), never a guess.
func TestReadEfusesNoisyAnswers(t *testing.T) {
	t.Parallel()
	c := chip.S3()
	base := c.Efuse.BlockRead[4] // BLOCK_KEY0, word 0
	tests := []struct {
		name  string
		noise func(seen map[uint32]int, addr, v uint32) uint32
		err   error
	}{
		{"each word's first answer flipped", func(seen map[uint32]int, addr, v uint32) uint32 {
			if seen[addr]++; seen[addr] == 1 {
				return v ^ 1<<(addr%32)
			}
			return v
		}, nil},
		{"two answers in a row spoilt, differently", func(seen map[uint32]int, addr, v uint32) uint32 {
			switch seen[addr]++; seen[addr] {
			case 1:
				return v ^ 0x80000000
			case 2:
				return v ^ 0x40000000
			}
			return v
		}, nil},
		{"a key word's answers never agree", func(seen map[uint32]int, addr, v uint32) uint32 {
			if addr == base {
				seen[addr]++
				return v ^ uint32(seen[addr])
			}
			return v
		}, flasher.ErrReadUnstable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeChip(c)
			for b := range f.phys.Blocks {
				for w := range f.phys.Blocks[b] {
					f.phys.Blocks[b][w] = uint32(b<<8 | w)
				}
			}
			f.reload()
			withFake(t, f, func(t *testing.T, ctx context.Context, s *flasher.Session) {
				seen := map[uint32]int{}
				f.mu.Lock()
				f.readNoise = func(addr, v uint32) uint32 { return tc.noise(seen, addr, v) }
				f.mu.Unlock()
				img, err := s.ReadEfuses(ctx)
				if tc.err != nil {
					if !errors.Is(err, tc.err) || img != nil {
						t.Fatalf("err %v, image %v; want %v and no image", err, img != nil, tc.err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !img.Equal(f.phys) {
					t.Fatalf("read %v\nwant %v", img.Blocks, f.phys.Blocks)
				}
			})
		})
	}
}

func TestBurnBlocks(t *testing.T) {
	t.Parallel()
	block0 := flasher.BlockProgram{Block: 0, Words: []uint32{0, 0, 0x000C0000, 0, 0, 0}}
	tests := []struct {
		name    string
		chip    chip.Chip
		setup   func(f *fakeChip)
		progs   []flasher.BlockProgram
		check   func(t *testing.T, f *fakeChip, err error)
		wantErr bool
	}{
		{name: "s3 key then block0, highest first", chip: chip.S3(),
			progs: []flasher.BlockProgram{block0, keyProgram(4, true), keyProgram(5, true)},
			check: func(t *testing.T, f *fakeChip, err error) {
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(f.programmed) != "[5 4 0]" {
					t.Fatalf("programmed %v", f.programmed)
				}
				if f.phys.Blocks[0][2] != 0x000C0000 {
					t.Fatalf("block0 %x", f.phys.Blocks[0])
				}
				for _, b := range []int{4, 5} {
					if want := keyProgram(b, true).Words; fmt.Sprint(f.phys.Blocks[b]) != fmt.Sprint(want) {
						t.Fatalf("BLOCK%d = %x", b, f.phys.Blocks[b])
					}
				}
				if f.reloads != 3*6 {
					t.Fatalf("reloads %d, want 6 per block", f.reloads)
				}
			}},
		{name: "c3 shifted FAIL bit is seen and retried", chip: chip.C3(),
			setup: func(f *fakeChip) { f.failPrograms = 1 },
			progs: []flasher.BlockProgram{keyProgram(9, true)},
			check: func(t *testing.T, f *fakeChip, err error) {
				if err != nil || fmt.Sprint(f.programmed) != "[9 9]" {
					t.Fatalf("err %v programmed %v", err, f.programmed)
				}
			}},
		{name: "s3 block0 repeat error retried", chip: chip.S3(),
			setup: func(f *fakeChip) { f.failPrograms = 2 },
			progs: []flasher.BlockProgram{block0},
			check: func(t *testing.T, f *fakeChip, err error) {
				if err != nil || len(f.programmed) != 3 {
					t.Fatalf("err %v programmed %v", err, f.programmed)
				}
			}},
		{name: "wrong check words fail 3 times", chip: chip.S3(),
			progs: []flasher.BlockProgram{{Block: 6, Words: []uint32{1, 2, 3, 4, 5, 6, 7, 8}, Secret: true}},
			check: func(t *testing.T, f *fakeChip, err error) {
				be, ok := errors.AsType[*flasher.EfuseBurnError](err)
				if !ok || be.Block != 6 || be.Attempts != 3 || be.ErrorRegs[0] != 1 || be.ErrorRegs[1] != 1 {
					t.Fatalf("err %#v", err)
				}
				if len(f.programmed) != 3 {
					t.Fatalf("programmed %v", f.programmed)
				}
			}},
		{name: "stuck bit named, not for secrets", chip: chip.S3(),
			setup: func(f *fakeChip) {
				f.stuck = map[int][]uint32{3: {0, 0, 0x100, 0, 0, 0, 0, 0}, 7: {0x4, 0, 0, 0, 0, 0, 0, 0}}
			},
			progs: []flasher.BlockProgram{keyProgram(3, false), keyProgram(7, true)},
			check: func(t *testing.T, f *fakeChip, err error) {
				be, ok := errors.AsType[*flasher.EfuseBurnError](err)
				if !ok || be.Block != 7 || be.Missing != nil || be.MissingCount != 1 {
					t.Fatalf("err %v", err)
				}
				for _, w := range keyProgram(7, true).Words {
					if strings.Contains(err.Error(), fmt.Sprintf("%08x", w)) {
						t.Fatalf("secret word in %q", err)
					}
				}
			}},
		{name: "stuck bit in a plain block", chip: chip.C3(),
			setup: func(f *fakeChip) { f.stuck = map[int][]uint32{3: {0, 0, 0x100, 0, 0, 0, 0, 0}} },
			progs: []flasher.BlockProgram{keyProgram(3, false)},
			check: func(t *testing.T, f *fakeChip, err error) {
				if err == nil || !strings.Contains(err.Error(), "BLOCK3") || !strings.Contains(err.Error(), "word 2 bits 0x00000100") {
					t.Fatalf("err %v", err)
				}
			}},
		{name: "lockdown cuts the link", chip: chip.S3(),
			setup: func(f *fakeChip) { f.lockOnBlock0 = true },
			progs: []flasher.BlockProgram{{Block: 0, Words: []uint32{0, 0, 0, 0, 1 << 0, 0}, Lockdown: true}},
			check: func(t *testing.T, f *fakeChip, err error) {
				if !errors.Is(err, flasher.ErrLinkClosedByLockdown) {
					t.Fatalf("err %v", err)
				}
			}},
		{name: "lockdown not expected is an error", chip: chip.S3(),
			setup: func(f *fakeChip) { f.lockOnBlock0 = true },
			progs: []flasher.BlockProgram{{Block: 0, Words: []uint32{0, 0, 0, 0, 1, 0}}},
			check: func(t *testing.T, f *fakeChip, err error) {
				if err == nil || errors.Is(err, flasher.ErrLinkClosedByLockdown) || !errors.Is(err, flasher.ErrUnsupported) {
					t.Fatalf("err %v", err)
				}
			}},
		{name: "esp32 classic block3", chip: chip.ESP32V3(),
			progs: []flasher.BlockProgram{{Block: 3, Words: []uint32{1, 2, 3, 4, 5, 6, 7, 8}}},
			check: func(t *testing.T, f *fakeChip, err error) {
				if err != nil || fmt.Sprint(f.phys.Blocks[3]) != "[1 2 3 4 5 6 7 8]" {
					t.Fatalf("err %v block %v", err, f.phys.Blocks[3])
				}
			}},
		{name: "bad block", chip: chip.S3(),
			progs: []flasher.BlockProgram{{Block: 11, Words: []uint32{1}}},
			check: func(t *testing.T, f *fakeChip, err error) {
				if err == nil || len(f.programmed) != 0 {
					t.Fatal(err)
				}
			}},
		{name: "too many words", chip: chip.S3(),
			progs: []flasher.BlockProgram{{Block: 1, Words: make([]uint32, 8)}},
			check: func(t *testing.T, f *fakeChip, err error) {
				if err == nil || len(f.programmed) != 0 {
					t.Fatal(err)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeChip(tc.chip)
			if tc.setup != nil {
				tc.setup(f)
			}
			withFake(t, f, func(t *testing.T, ctx context.Context, s *flasher.Session) {
				err := s.BurnBlocks(ctx, tc.progs)
				tc.check(t, f, err)
			})
		})
	}
}

// One BLOCK0 burn through the ROM takes 60 register round trips: the
// timing setup (3 reads, 1 write), an idle poll (2 reads), the data load
// (1 write), PGM (1 write) and its idle poll (2), six reloads of one write,
// an idle poll and the 5 repeat-error reads each, and the read-back of the
// one word that has requested bits (twice: the two reads must agree, as a
// READ_REG answer carries no checksum), and before PGM the 8 data words and
// CONF read back (twice each: a WRITE_REG carries no checksum either), 78
// in all.
// espefuse's sequence takes 92 (every read-modify-write and write its own
// command, CMD polled before and after everything). On a line each round
// trip costs the USB adapter's latency.
func TestBurnRoundTrips(t *testing.T) {
	t.Parallel()
	f := newFakeChip(chip.S3())
	withFake(t, f, func(t *testing.T, ctx context.Context, s *flasher.Session) {
		before := f.regOps
		if err := s.BurnBlocks(ctx, []flasher.BlockProgram{{Block: 0, Words: []uint32{0, 0, 0x000C0000, 0, 0, 0}}}); err != nil {
			t.Fatal(err)
		}
		if got := f.regOps - before; got != 78 {
			t.Fatalf("%d register round trips, want 78", got)
		}
	})
}

// The program loads exactly the data words, zero padding and, for RS
// blocks, CHECK_VALUE words; CONF/CMD are 0x5A5A / 0x2|block<<2 (§1.3).
func TestBurnRegisterValues(t *testing.T) {
	t.Parallel()
	f := newFakeChip(chip.S3())
	p := keyProgram(1, false)
	p.Words = p.Words[:6]
	var w [8]uint32
	copy(w[:], p.Words)
	p.Check = efuse.CheckWords(w)
	withFake(t, f, func(t *testing.T, ctx context.Context, s *flasher.Session) {
		if err := s.BurnBlocks(ctx, []flasher.BlockProgram{p}); err != nil {
			t.Fatal(err)
		}
	})
	e := chip.S3().Efuse
	if f.regs[e.DacConf] != 0xFF<<9|0x28 || f.regs[e.WrTimConf1] != 0x3000<<8 || f.regs[e.WrTimConf2] != 0x190 {
		t.Fatalf("timing %x %x %x", f.regs[e.DacConf], f.regs[e.WrTimConf1], f.regs[e.WrTimConf2])
	}
	for i := 0; i < 8; i++ {
		if f.regs[e.PgmData0+uint32(4*i)] != 0 {
			t.Fatal("PGM_DATA not cleared after programming")
		}
	}
	if f.regs[e.CheckValue0] != p.Check[0] {
		t.Fatal("check words not loaded")
	}
	if fmt.Sprint(f.phys.Blocks[1]) != fmt.Sprint(p.Words) {
		t.Fatalf("BLOCK1 %x", f.phys.Blocks[1])
	}
}

// WRITE_REG carries no checksum: a data word, check word or CONF the line
// changed would be burned for good (other bits, or the key in another
// block). BurnBlocks reads the program registers back before the trigger:
// a write spoilt once is loaded again and the block burns exactly its
// data; a line that spoils every load fails the burn as a link error
// (ErrWriteNotTaken) with nothing programmed.
func TestBurnProgramRegistersCheckedBeforeTrigger(t *testing.T) {
	t.Parallel()
	e := chip.S3().Efuse
	// BLOCK0 has no RS check words, so a spoilt data word programs; a
	// key block's check words must match its data.
	block0 := flasher.BlockProgram{Block: 0, Words: []uint32{0x11, 0x2200, 0x330000, 0x44000000, 0x5, 0x60}}
	key := keyProgram(4, true)
	tests := []struct {
		name  string
		p     flasher.BlockProgram
		noise func(n *int, r loader.RegWrite) loader.RegWrite
		err   error
	}{
		{"a data word's value flipped once", block0, func(n *int, r loader.RegWrite) loader.RegWrite {
			if r.Addr == e.PgmData0+8 && r.Value != 0 {
				if *n++; *n == 1 {
					r.Value |= ^r.Value & -^r.Value // a bit the word does not have
				}
			}
			return r
		}, nil},
		{"a data word's address changed once", block0, func(n *int, r loader.RegWrite) loader.RegWrite {
			if r.Addr == e.PgmData0+0x14 && r.Value != 0 {
				if *n++; *n == 1 {
					r.Addr = e.PgmData0 // word 5's bits land in word 0
				}
			}
			return r
		}, nil},
		{"CONF flipped once", key, func(n *int, r loader.RegWrite) loader.RegWrite {
			if r.Addr == e.Conf && r.Value == chip.EfuseOpProgram {
				if *n++; *n == 1 {
					r.Value ^= 0x100
				}
			}
			return r
		}, nil},
		{"a check word flipped on every load", key, func(n *int, r loader.RegWrite) loader.RegWrite {
			if r.Addr == e.CheckValue0+4 && r.Value != 0 {
				r.Value ^= 1
			}
			return r
		}, flasher.ErrWriteNotTaken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeChip(chip.S3())
			n := 0
			f.writeNoise = func(r loader.RegWrite) loader.RegWrite { return tc.noise(&n, r) }
			withFake(t, f, func(t *testing.T, ctx context.Context, s *flasher.Session) {
				err := s.BurnBlocks(ctx, []flasher.BlockProgram{tc.p})
				if tc.err != nil {
					if !errors.Is(err, tc.err) {
						t.Fatalf("err %v, want %v", err, tc.err)
					}
					if be, ok := errors.AsType[*flasher.EfuseBurnError](err); !ok || be.Err == nil {
						t.Fatalf("err %#v: want a burn that ended on a link error, not a verify failure", err)
					}
					if len(f.programmed) != 0 {
						t.Fatalf("programmed %v, want nothing", f.programmed)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
			})
			if tc.err != nil {
				return
			}
			if n == 0 {
				t.Fatal("the noise never struck")
			}
			for b := range f.phys.Blocks {
				for i, v := range f.phys.Blocks[b] {
					want := uint32(0)
					if b == tc.p.Block && i < len(tc.p.Words) {
						want = tc.p.Words[i]
					}
					if v != want {
						t.Fatalf("BLOCK%d word %d = 0x%08x, want 0x%08x", b, i, v, want)
					}
				}
			}
		})
	}
}

// The MAC names the device in the journal and the evidence: a MAC word
// whose READ_REG answer the line changed (no checksum) is read again, not
// taken as the board's identity.
func TestConnectMACNoisyAnswer(t *testing.T) {
	t.Parallel()
	c := chip.S3()
	f := newFakeChip(c)
	f.phys.Blocks[1][0], f.phys.Blocks[1][1] = 0x11223344, 0x5566
	f.reload()
	lo := c.Efuse.BlockRead[1]
	seen := map[uint32]int{}
	f.readNoise = func(addr, v uint32) uint32 {
		if addr == lo || addr == lo+4 {
			if seen[addr]++; seen[addr] == 1 {
				return v ^ 0x100
			}
		}
		return v
	}
	withFake(t, f, func(t *testing.T, ctx context.Context, s *flasher.Session) {
		if got, want := s.Info().MAC, [6]byte{0x55, 0x66, 0x11, 0x22, 0x33, 0x44}; got != want {
			t.Fatalf("MAC %x, want %x", got, want)
		}
	})
	if seen[lo] == 0 {
		t.Fatal("the MAC was never read")
	}
}
