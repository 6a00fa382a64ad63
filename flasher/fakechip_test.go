package flasher_test

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"

	"fuseline/esp/chip"
	"fuseline/esp/efuse"
	"fuseline/esp/loader"
	"fuseline/esp/slip"
)

// fakeChip is a small register-level ROM loader for behaviour tests (the
// full model is fixtures/virtual): SYNC, GET_SECURITY_INFO, READ_REG,
// WRITE_REG, and an eFuse controller that programs, reloads and reports
// errors per esp-security-facts §1.1/§1.5. It serves one end of net.Pipe.
type fakeChip struct {
	c chip.Chip

	mu         sync.Mutex
	regs       map[uint32]uint32
	phys       *efuse.Image
	ignoreSync int                // SYNCs to leave unanswered (auto-baud)
	silent     map[loader.Op]bool // opcodes never answered
	// failPrograms makes that many PGM commands do nothing but flag an
	// error at the next reload.
	failPrograms int
	// stuck bits never program (per block, per word).
	stuck map[int][]uint32
	// lockOnBlock0: after a reload that follows a BLOCK0 program, answer
	// register access as a secure-download ROM does (refused).
	lockOnBlock0 bool
	locked       bool
	pendingLock  bool
	pendingErr   int // block with an error to report, -1 none
	errorBlock   int // block whose error bits are set in the read regs, -1 none
	programmed   []int
	reloads      int
	lastOp       loader.Op
	// regOps counts READ_REG and WRITE_REG commands (round trips).
	regOps int
	// readNoise, if set, changes the value of a READ_REG answer as a noisy
	// line does: the frame and its status stay intact.
	readNoise func(addr, v uint32) uint32
	// writeNoise, if set, changes a WRITE_REG record as a noisy line does
	// (the loader's WRITE_REG carries no checksum).
	writeNoise func(r loader.RegWrite) loader.RegWrite
}

func newFakeChip(c chip.Chip) *fakeChip {
	img, _ := efuse.NewImage(c.ID)
	return &fakeChip{c: c, regs: map[uint32]uint32{}, phys: img, silent: map[loader.Op]bool{}, pendingErr: -1, errorBlock: -1}
}

// start serves the chip end of a pipe and returns the host end; closing
// the host end stops the server.
func (f *fakeChip) start(t *testing.T) net.Conn {
	host, dev := net.Pipe()
	go f.serve(dev)
	return host
}

func (f *fakeChip) serve(conn net.Conn) {
	defer conn.Close()
	r := slip.NewReader(conn)
	for {
		frame, err := r.ReadFrame()
		if err != nil {
			if errors.Is(err, slip.ErrBadEscape) {
				continue
			}
			return
		}
		req, err := loader.DecodeRequest(frame)
		if err != nil {
			continue
		}
		f.mu.Lock()
		replies := f.handle(req)
		f.mu.Unlock()
		for _, rep := range replies {
			if _, err := conn.Write(slip.Encode(loader.EncodeResponse(rep))); err != nil {
				return
			}
		}
	}
}

func ok(op loader.Op, v uint32, result []byte) loader.Response {
	return loader.Response{Op: op, Value: v, Data: append(append([]byte(nil), result...), 0, 0, 0, 0)}
}

func (f *fakeChip) handle(req loader.Request) []loader.Response {
	if f.silent[req.Op] {
		return nil
	}
	if f.locked && (req.Op == loader.OpReadReg || req.Op == loader.OpWriteReg) {
		return []loader.Response{{Op: f.lastOp, Data: []byte{1, 5, 0, 0}}}
	}
	f.lastOp = req.Op
	if req.Op == loader.OpReadReg || req.Op == loader.OpWriteReg {
		f.regOps++
	}
	switch req.Op {
	case loader.OpSync:
		if f.ignoreSync > 0 {
			f.ignoreSync--
			return nil
		}
		out := make([]loader.Response, loader.SyncReplies)
		for i := range out {
			out[i] = ok(loader.OpSync, loader.SyncValue, nil)
		}
		return out
	case loader.OpGetSecurityInfo:
		if !f.c.HasSecurityInfo {
			return []loader.Response{{Op: loader.OpSync, Data: []byte{1, 5, 0, 0}}}
		}
		return []loader.Response{ok(req.Op, 0, loader.SecurityInfo{HasChipID: true, ChipID: uint32(f.c.ID)}.Encode())}
	case loader.OpReadReg:
		a, _ := loader.ParseReadReg(req.Data)
		v := f.regs[a]
		if a == chip.MagicAddr {
			v = f.c.MagicValues[0]
		} else if f.readNoise != nil {
			v = f.readNoise(a, v)
		}
		return []loader.Response{ok(req.Op, v, nil)}
	case loader.OpWriteReg:
		recs, err := loader.ParseWriteReg(req.Data)
		if err != nil {
			return []loader.Response{{Op: req.Op, Data: []byte{1, 5, 0, 0}}}
		}
		for _, r := range recs {
			if f.writeNoise != nil {
				r = f.writeNoise(r)
			}
			f.regs[r.Addr] = r.Apply(f.regs[r.Addr])
			f.sideEffects(r.Addr)
		}
		return []loader.Response{ok(req.Op, 0, nil)}
	}
	return []loader.Response{{Op: req.Op, Data: []byte{1, 5, 0, 0}}}
}

func (f *fakeChip) sideEffects(addr uint32) {
	if e := f.c.Efuse; e != nil && addr == e.Cmd {
		v := f.regs[addr]
		f.regs[addr] = 0 // operations finish at once
		switch {
		case v&2 != 0 && f.regs[e.Conf] == chip.EfuseOpProgram:
			f.program((int(v>>2))&0xF, func(i int) uint32 { return f.regs[e.PgmData0+uint32(4*i)] },
				func(i int) uint32 { return f.regs[e.CheckValue0+uint32(4*i)] })
		case v&1 != 0 && f.regs[e.Conf] == chip.EfuseOpRead:
			f.reload()
		}
	}
	if e := f.c.ClassicEfuse; e != nil && addr == e.Cmd {
		v := f.regs[addr]
		f.regs[addr] = 0
		if v&1 != 0 && f.regs[e.Conf] == chip.EfuseOpRead {
			// esptool's emulator: a read copies every write window in.
			for b := range f.phys.Blocks {
				for w := range f.phys.Blocks[b] {
					wa := e.BlockWrite[b] + uint32(4*w)
					f.phys.Blocks[b][w] |= f.regs[wa]
					f.regs[wa] = 0
				}
			}
			f.reload()
		}
		if v&2 != 0 {
			f.programmed = append(f.programmed, -1)
		}
	}
}

func (f *fakeChip) program(block int, data, check func(int) uint32) {
	f.programmed = append(f.programmed, block)
	f.errorBlock = -1
	if f.failPrograms > 0 {
		f.failPrograms--
		f.pendingErr = block
		return
	}
	if block > 0 {
		var w [8]uint32
		for i := range w {
			w[i] = data(i)
		}
		want := efuse.CheckWords(w)
		for i := range want {
			if want[i] != check(i) {
				f.pendingErr = block // wrong RS check bytes
				return
			}
		}
	}
	for i := range f.phys.Blocks[block] {
		v := data(i)
		if s := f.stuck[block]; s != nil {
			v &^= s[i]
		}
		f.phys.Blocks[block][i] |= v
	}
	if block == 0 && f.lockOnBlock0 {
		f.pendingLock = true
	}
}

func (f *fakeChip) reload() {
	f.reloads++
	c := f.c
	var reads []uint32
	if c.Efuse != nil {
		reads = c.Efuse.BlockRead[:]
	} else {
		reads = c.ClassicEfuse.BlockRead[:]
	}
	for b, base := range reads {
		for w, v := range f.phys.Blocks[b] {
			f.regs[base+uint32(4*w)] = v
		}
	}
	if e := c.Efuse; e != nil {
		for _, a := range []uint32{e.RepeatErr0, e.RepeatErr0 + 4, e.RepeatErr0 + 8, e.RepeatErr0 + 12, e.RepeatErr4[0], e.RSErr0, e.RSErr1} {
			f.regs[a] = 0
		}
		if f.pendingErr >= 0 {
			f.errorBlock, f.pendingErr = f.pendingErr, -1
		}
		if b := f.errorBlock; b == 0 {
			f.regs[e.RepeatErr0] = 0x10
		} else if b > 0 {
			idx := b - 1
			set := func(nib, bits int) {
				addr := e.RSErr0
				if nib >= 8 {
					addr = e.RSErr1
				}
				f.regs[addr] |= uint32(bits) << (4 * (nib % 8))
			}
			set(idx, 1)
			if e.RSFailShifted {
				if b < 10 {
					set(idx+1, 8)
				}
			} else {
				set(idx, 8)
			}
		}
	}
	if f.pendingLock {
		f.locked = true
	}
}

func (f *fakeChip) String() string { return fmt.Sprintf("fake %s", f.c.Name) }
