package flasher

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"time"

	"fuseline/esp/chip"
	"fuseline/esp/image"
	"fuseline/esp/loader"
)

// Region is data to write at a flash offset.
type Region struct {
	// Name labels progress events and errors ("bootloader", "app").
	Name   string
	Offset uint32
	Data   []byte
	// ChipEncrypt asks the loader to encrypt the data with the chip's own
	// flash-encryption key (FLASH_BEGIN encrypted word = 1). Host-encrypted
	// ciphertext is written with ChipEncrypt false, like any data.
	ChipEncrypt bool
	// NoImageCheck skips the check that an image at the bootloader offset
	// or at a 64 KiB boundary is built for the connected chip.
	NoImageCheck bool
	// Deflated, when set, is Deflate(Data), made earlier: a station writing
	// the same plaintext to board after board compresses it once, or while
	// it burns eFuses, instead of between the eFuses and the first block.
	// The flash MD5 check (or, for chip-encrypted writes, the caller's
	// check of the ciphertext) catches a stream that is not of Data.
	Deflated []byte
}

// Deflate compresses data as WriteRegion does (padded to 4 bytes, zlib at
// the best level), for Region.Deflated.
func Deflate(data []byte) ([]byte, error) { return deflate(pad(data, 4)) }

// WriteResult says what WriteRegion did.
type WriteResult struct {
	Region     string
	Offset     uint32
	Size       int  // bytes written, after padding
	WireBytes  int  // payload bytes sent (compressed size when compressed)
	Compressed bool // FLASH_DEFL_* was used
	// MD5 of the Size bytes written (plaintext).
	MD5 [16]byte
	// Verified is true when the flash MD5 matched MD5.
	Verified bool
	// NotVerified says why Verified is false.
	NotVerified string
	// Retries counts data blocks sent more than once.
	Retries  int
	Duration time.Duration
}

const appAlign = 0x10000

func (s *Session) blockSize() int {
	if s.info.Stub {
		return cmpInt(s.cfg.StubBlockSize, loader.StubFlashBlock)
	}
	return loader.ROMFlashBlock
}

// beginLong reports whether FLASH_BEGIN carries the 5th (encrypted) word:
// always for the S3/C3 ROM, never for the ESP32 ROM, and for the stub only
// when encrypting (older stubs accept only 16 bytes).
func (s *Session) beginLong(encrypt bool) bool {
	if s.info.Stub {
		return encrypt
	}
	return s.info.Chip.ID != chip.ESP32
}

func regionErr(r Region, format string, a ...any) error {
	return fmt.Errorf("%w: %s at 0x%x (+0x%x): %s", ErrBadRegion, name(r.Name), r.Offset, len(r.Data), fmt.Sprintf(format, a...))
}

func name(n string) string {
	if n == "" {
		return "region"
	}
	return n
}

// checkImage refuses an image for another chip at the bootloader offset or
// an app slot. Only data that parses as an ESP image is judged (a FAT boot
// sector starts with 0xE9 too); checksums are not the point here.
func (s *Session) checkImage(r Region) error {
	if r.NoImageCheck || len(r.Data) == 0 || r.Data[0] != image.Magic {
		return nil
	}
	c := s.info.Chip
	if r.Offset != c.BootloaderOffset && r.Offset%appAlign != 0 {
		return nil
	}
	img, err := image.ParseUnverified(r.Data)
	if err != nil {
		return nil
	}
	if got := img.Header.ChipID; got != c.ID {
		return &ChipMismatchError{What: fmt.Sprintf("%s at 0x%x", name(r.Name), r.Offset), Want: c.ID, Got: got}
	}
	return nil
}

func pad(b []byte, align int) []byte {
	n := (len(b) + align - 1) / align * align
	if n == len(b) {
		return b
	}
	out := make([]byte, n)
	copy(out, b)
	for i := len(b); i < n; i++ {
		out[i] = 0xFF
	}
	return out
}

// WriteRegion writes one region: pre-checks (alignment, size, chip of an
// image), compressed when the loader allows it and it shrinks the data,
// data blocks retried on checksum errors and timeouts, then the flash MD5
// is compared (not for chip-encrypted writes, whose flash holds ciphertext,
// nor in secure download mode; WriteResult.NotVerified says so).
func (s *Session) WriteRegion(ctx context.Context, r Region) (*WriteResult, error) {
	start := time.Now()
	if err := s.alive(); err != nil {
		return nil, err
	}
	c := s.info.Chip
	if len(r.Data) == 0 {
		return nil, regionErr(r, "no data")
	}
	if r.Offset%loader.SectorSize != 0 {
		return nil, regionErr(r, "offset is not a multiple of 0x%x (a write erases whole sectors)", loader.SectorSize)
	}
	if err := s.checkImage(r); err != nil {
		return nil, err
	}
	data := pad(r.Data, 4)
	if r.ChipEncrypt {
		if s.info.SecureDownload {
			return nil, fmt.Errorf("flasher: chip-encrypted write of %s: cannot be verified: %w", name(r.Name), ErrSecureDownload)
		}
		if !s.info.Stub && c.ID == chip.ESP32 {
			return nil, regionErr(r, "the ESP32 ROM has no encrypted FLASH_BEGIN; upload the stub or encrypt on the host")
		}
		align := int(max(c.EncryptedWriteAlign, 16))
		if r.Offset%uint32(align) != 0 {
			return nil, regionErr(r, "encrypted writes must start on a %d-byte boundary", align)
		}
		data = pad(r.Data, align)
	}
	if err := s.prepareFlash(ctx); err != nil {
		return nil, err
	}
	if end := uint64(r.Offset) + uint64(len(data)); end > uint64(s.info.FlashSize) {
		return nil, regionErr(r, "ends at 0x%x, past the end of the %d MiB flash", end, s.info.FlashSize>>20)
	}
	res := &WriteResult{Region: r.Name, Offset: r.Offset, Size: len(data), MD5: md5.Sum(data)}
	st := &writeState{res: res}
	compress := !s.cfg.NoCompress && !s.info.SecureDownload && (s.info.Stub || !r.ChipEncrypt)
	var err error
	if compress {
		z := r.Deflated
		if z == nil {
			if z, err = deflate(data); err != nil {
				return nil, err
			}
		}
		if len(z) < len(data) {
			res.Compressed = true
			res.WireBytes = len(z)
			err = s.writeDeflated(ctx, r, data, z, st)
		}
	}
	if !res.Compressed {
		res.WireBytes = len(data)
		err = s.writePlain(ctx, r, data, st)
	}
	if err != nil {
		return res, err
	}
	switch {
	case r.ChipEncrypt:
		res.NotVerified = "chip-encrypted write: flash holds ciphertext made with the chip's key; compare the MD5 of the expected ciphertext"
	case s.info.SecureDownload:
		res.NotVerified = "secure download mode: SPI_FLASH_MD5 is refused"
	}
	if res.NotVerified != "" {
		if st.uncertain {
			return res, fmt.Errorf("flasher: %s at 0x%x: a data block's outcome is unknown (lost reply) and the region cannot be verified (%s): %w", name(r.Name), r.Offset, res.NotVerified, ErrVerify)
		}
		res.Duration = time.Since(start)
		return res, nil
	}
	s.emit(Event{Phase: PhaseVerify, Region: r.Name, Done: 0, Total: int64(len(data))})
	got, err := s.FlashMD5(ctx, r.Offset, uint32(len(data)))
	if err != nil {
		return res, fmt.Errorf("flasher: verify %s: %w", name(r.Name), err)
	}
	if got != res.MD5 {
		return res, &VerifyError{Region: name(r.Name), Offset: r.Offset, Size: uint32(len(data)), Want: res.MD5, Got: got}
	}
	res.Verified = true
	s.emit(Event{Phase: PhaseVerify, Region: r.Name, Done: int64(len(data)), Total: int64(len(data))})
	res.Duration = time.Since(start)
	return res, nil
}

type writeState struct {
	res       *WriteResult
	uncertain bool // a block's reply was lost and its retry hit a sequence error
}

func deflate(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (s *Session) writePlain(ctx context.Context, r Region, data []byte, st *writeState) error {
	bs := s.blockSize()
	n := (len(data) + bs - 1) / bs
	begin := loader.Begin{Size: uint32(len(data)), Blocks: uint32(n), BlockSize: uint32(bs), Offset: r.Offset,
		Encrypted: r.ChipEncrypt, Long: s.beginLong(r.ChipEncrypt)}
	s.emit(Event{Phase: PhaseErase, Region: r.Name, Total: int64(len(data))})
	if err := s.simple(ctx, loader.OpFlashBegin, begin.Encode(), timeoutPerMB(eraseSecondsPerMB, len(data))); err != nil {
		return fmt.Errorf("flasher: write %s at 0x%x: %w", name(r.Name), r.Offset, err)
	}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		blk := data[i*bs : min((i+1)*bs, len(data))]
		blk = pad(blk, bs) // esptool pads every block, the last too
		if err := s.sendBlock(ctx, loader.OpFlashData, uint32(i), blk, DefaultTimeout, st); err != nil {
			return fmt.Errorf("flasher: write %s at 0x%x, block %d of %d: %w", name(r.Name), r.Offset+uint32(i*bs), i+1, n, err)
		}
		done := min((i+1)*bs, len(data))
		s.emit(Event{Phase: PhaseWrite, Region: r.Name, Done: int64(done), Total: int64(len(data)), Rate: rate(done, t0)})
	}
	if s.info.Stub {
		// Barrier: the stub answers once every write is done (§1.7 FLASH_END).
		if err := s.simple(ctx, loader.OpFlashEnd, loader.EncodeFlashEnd(loader.EndRunUser), DefaultTimeout); err != nil {
			return fmt.Errorf("flasher: finish %s: %w", name(r.Name), err)
		}
	}
	return nil
}

func rate(done int, t0 time.Time) float64 {
	if el := time.Since(t0).Seconds(); el > 0 {
		return float64(done) / el
	}
	return 0
}

func (s *Session) writeDeflated(ctx context.Context, r Region, data, z []byte, st *writeState) error {
	bs := s.blockSize()
	n := (len(z) + bs - 1) / bs
	size := uint32(len(data))
	if !s.info.Stub {
		size = uint32((len(data) + bs - 1) / bs * bs) // the ROM erases this much up front (§7)
	}
	begin := loader.Begin{Size: size, Blocks: uint32(n), BlockSize: uint32(bs), Offset: r.Offset,
		Encrypted: r.ChipEncrypt, Long: s.beginLong(r.ChipEncrypt)}
	s.emit(Event{Phase: PhaseErase, Region: r.Name, Total: int64(len(data))})
	if err := s.simple(ctx, loader.OpFlashDeflBegin, begin.Encode(), timeoutPerMB(eraseSecondsPerMB, int(size))); err != nil {
		return fmt.Errorf("flasher: write %s at 0x%x (compressed): %w", name(r.Name), r.Offset, err)
	}
	inflated := inflatedAt(z, bs)
	t0 := time.Now()
	prev := 0
	for i := 0; i < n; i++ {
		blk := z[i*bs : min((i+1)*bs, len(z))]
		grown := inflated[i] - prev
		prev = inflated[i]
		work := grown
		if s.info.Stub {
			work += ((grown+32<<10-1)/(32<<10) + 1) * (64 << 10) // erase allowance (§1.9)
		}
		if err := s.sendBlock(ctx, loader.OpFlashDeflData, uint32(i), blk, timeoutPerMB(eraseSecondsPerMB, work), st); err != nil {
			return fmt.Errorf("flasher: write %s at 0x%x (compressed block %d of %d): %w", name(r.Name), r.Offset, i+1, n, err)
		}
		s.emit(Event{Phase: PhaseWrite, Region: r.Name, Done: int64(inflated[i]), Total: int64(len(data)), Rate: rate(inflated[i], t0)})
	}
	if s.info.Stub {
		if err := s.simple(ctx, loader.OpFlashDeflEnd, loader.EncodeFlashEnd(loader.EndRunUser), DefaultTimeout); err != nil {
			return fmt.Errorf("flasher: finish %s (compressed): %w", name(r.Name), err)
		}
	}
	return nil
}

// countingReader is a bytes.Reader that reports how much was consumed; it
// implements io.ByteReader so the inflater reads no further than it needs.
type countingReader struct {
	b []byte
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n >= len(c.b) {
		return 0, io.EOF
	}
	k := copy(p, c.b[c.n:])
	c.n += k
	return k, nil
}

func (c *countingReader) ReadByte() (byte, error) {
	if c.n >= len(c.b) {
		return 0, io.EOF
	}
	c.n++
	return c.b[c.n-1], nil
}

// inflatedAt returns, for each block of the compressed stream, how many
// uncompressed bytes are available once that block has arrived; it sizes
// each block's timeout by the work it causes, as esptool does.
func inflatedAt(z []byte, bs int) []int {
	n := (len(z) + bs - 1) / bs
	out := make([]int, n)
	cr := &countingReader{b: z}
	zr, err := zlib.NewReader(cr)
	total := 0
	if err == nil {
		buf := make([]byte, 1024)
		for {
			k, rerr := zr.Read(buf)
			total += k
			if blk := (cr.n - 1) / bs; blk >= 0 && blk < n && total > out[blk] {
				out[blk] = total
			}
			if rerr != nil {
				break
			}
		}
	}
	for i := 1; i < n; i++ {
		out[i] = max(out[i], out[i-1])
	}
	return out
}

// sendBlock sends one *_DATA block, retrying on checksum errors, timeouts
// and damaged replies (3 tries by default), resyncing before each retry.
func (s *Session) sendBlock(ctx context.Context, op loader.Op, seq uint32, blk []byte, timeout time.Duration, st *writeState) error {
	tries := cmpInt(s.cfg.BlockTries, 3)
	req := loader.DataRequest(op, seq, blk)
	lost := false // an earlier try's outcome is unknown
	var last error
	for t := 0; t < tries; t++ {
		if t > 0 {
			st.res.Retries++
			if _, err := s.w.drain(ctx, 50*time.Millisecond, 500*time.Millisecond); err != nil {
				return err
			}
			s.log.Debug("flasher: resending block", "op", op, "seq", seq, "err", last)
		}
		_, _, err := s.commandOnce(ctx, req, 0, timeout)
		if err == nil {
			return nil
		}
		last = err
		var ce *CommandError
		if !errors.As(err, &ce) {
			return err
		}
		switch {
		case ce.BadChecksum():
			continue
		case errors.Is(err, ErrTimeout) || errors.As(err, new(*loader.FormatError)):
			lost = true
			continue
		case lost && ce.Status == 1 && loader.ROMCode(ce.Code) == loader.ErrCodeBadMessage:
			// The ROM already took this block (its reply was lost) and now
			// rejects the repeated sequence number. Only the MD5 can tell.
			st.uncertain = true
			return nil
		}
		return err
	}
	return last
}

// FlashMD5 asks the loader for the MD5 of a flash range (SPI_FLASH_MD5).
func (s *Session) FlashMD5(ctx context.Context, offset, size uint32) ([16]byte, error) {
	if err := s.needRegs(); err != nil {
		return [16]byte{}, err
	}
	if err := s.prepareFlash(ctx); err != nil {
		return [16]byte{}, err
	}
	n := loader.MD5LenROM
	if s.info.Stub {
		n = loader.MD5LenStub
	}
	req := loader.Request{Op: loader.OpSPIFlashMD5, Data: loader.Region{Offset: offset, Size: size}.EncodeMD5()}
	_, res, err := s.command(ctx, req, n, timeoutPerMB(md5SecondsPerMB, int(size)))
	if err != nil {
		return [16]byte{}, fmt.Errorf("flasher: MD5 of 0x%x (+0x%x): %w", offset, size, err)
	}
	sum, err := loader.ParseMD5Result(res)
	if err != nil {
		return sum, fmt.Errorf("flasher: MD5 of 0x%x: %w", offset, err)
	}
	return sum, nil
}
