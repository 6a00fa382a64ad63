package slip

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// syncFrame is the 46-byte SYNC request of docs/esp-serial-and-images.md §1.1.
func syncFrame(t testing.TB) []byte {
	return unhex(t, "c0 00 08 24 00 00 00 00 00 07 07 12 20"+strings.Repeat("55", 32)+"c0")
}

func TestEncode(t *testing.T) {
	t.Parallel()
	syncPayload := append(unhex(t, "00 08 24 00 00 00 00 00 07 07 12 20"), bytes.Repeat([]byte{0x55}, 32)...)
	tests := []struct {
		name    string
		payload []byte
		want    []byte
	}{
		{"empty", nil, []byte{0xC0, 0xC0}},
		{"plain", []byte{1, 2, 3}, []byte{0xC0, 1, 2, 3, 0xC0}},
		{"end byte", []byte{0xC0}, []byte{0xC0, 0xDB, 0xDC, 0xC0}},
		{"esc byte", []byte{0xDB}, []byte{0xC0, 0xDB, 0xDD, 0xC0}},
		{"both", []byte{0xDB, 0xC0, 0xDC, 0xDD}, []byte{0xC0, 0xDB, 0xDD, 0xDB, 0xDC, 0xDC, 0xDD, 0xC0}},
		{"sync request", syncPayload, syncFrame(t)},
		{"read_reg magic", unhex(t, "00 0a 04 00 00 00 00 00 00 10 00 40"), unhex(t, "c0 00 0a 04 00 00 00 00 00 00 10 00 40 c0")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Encode(tc.payload)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("Encode(% x) = % x, want % x", tc.payload, got, tc.want)
			}
			if tc.name == "sync request" && len(got) != 46 {
				t.Fatalf("SYNC frame is %d bytes on the wire, want 46", len(got))
			}
			back, err := Decode(got[1 : len(got)-1])
			if err != nil || !bytes.Equal(back, tc.payload) && len(tc.payload) > 0 {
				t.Fatalf("Decode = % x, %v; want % x", back, err, tc.payload)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body []byte
		want error
	}{
		{"bad escape", []byte{1, 0xDB, 0x01}, ErrBadEscape},
		{"escape at end", []byte{1, 0xDB}, ErrBadEscape},
		{"raw end", []byte{1, 0xC0}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode(tc.body)
			if err == nil {
				t.Fatal("Decode succeeded, want error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), "offset") {
				t.Fatalf("error %q does not name an offset", err)
			}
		})
	}
}

type frameOrErr struct {
	frame []byte
	err   error
}

func readAll(r *Reader) []frameOrErr {
	var out []frameOrErr
	for {
		f, err := r.ReadFrame()
		if err == io.EOF {
			return out
		}
		out = append(out, frameOrErr{f, err})
		if err != nil && !errors.Is(err, ErrBadEscape) && !errors.Is(err, ErrFrameTooLong) {
			return out
		}
	}
}

func TestReader(t *testing.T) {
	t.Parallel()
	banner := []byte("ESP-ROM:esp32s3-20210327\r\nwaiting for download\r\n")
	stream := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name string
		in   []byte
		want []frameOrErr
		junk int // bytes skipped before the first frame
	}{
		{"one frame", Encode([]byte{1, 2}), []frameOrErr{{frame: []byte{1, 2}}}, 0},
		{"banner first", stream(banner, Encode([]byte{9})), []frameOrErr{{frame: []byte{9}}}, len(banner)},
		{"empty frames skipped", stream([]byte{0xC0, 0xC0, 0xC0}, Encode([]byte{7}), []byte{0xC0, 0xC0}), []frameOrErr{{frame: []byte{7}}}, 0},
		{"back to back", stream(Encode([]byte{1}), Encode([]byte{0xC0, 0xDB})), []frameOrErr{{frame: []byte{1}}, {frame: []byte{0xC0, 0xDB}}}, 0},
		{"junk between", stream(Encode([]byte{1}), []byte("noise"), Encode([]byte{2})), []frameOrErr{{frame: []byte{1}}, {frame: []byte{2}}}, 0},
		{"bad escape then good", stream([]byte{0xC0, 1, 0xDB, 0x05, 2, 0xC0}, Encode([]byte{3})), []frameOrErr{{err: ErrBadEscape}, {frame: []byte{3}}}, 0},
		{"escape before end", stream([]byte{0xC0, 1, 0xDB, 0xC0}, Encode([]byte{4})), []frameOrErr{{err: ErrBadEscape}, {frame: []byte{4}}}, 0},
		{"eof mid frame", []byte{0xC0, 1, 2}, []frameOrErr{{err: io.ErrUnexpectedEOF}}, 0},
		{"only junk", []byte("hello"), nil, 0},
		{"sync", syncFrame(t), []frameOrErr{{frame: syncFrame(t)[1:45]}}, 0},
	}
	wrappers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"plain", func(r io.Reader) io.Reader { return r }},
		{"onebyte", iotest.OneByteReader},
		{"half", iotest.HalfReader},
		{"dataerr", iotest.DataErrReader},
	}
	for _, tc := range tests {
		for _, w := range wrappers {
			t.Run(tc.name+"/"+w.name, func(t *testing.T) {
				t.Parallel()
				r := NewReader(w.wrap(bytes.NewReader(tc.in)))
				got := readAll(r)
				if len(got) != len(tc.want) {
					t.Fatalf("got %d results %v, want %d", len(got), got, len(tc.want))
				}
				for i := range got {
					if tc.want[i].err != nil {
						if !errors.Is(got[i].err, tc.want[i].err) {
							t.Fatalf("result %d: err %v, want %v", i, got[i].err, tc.want[i].err)
						}
						continue
					}
					if got[i].err != nil || !bytes.Equal(got[i].frame, tc.want[i].frame) {
						t.Fatalf("result %d: % x, %v; want % x", i, got[i].frame, got[i].err, tc.want[i].frame)
					}
				}
			})
		}
	}
}

func TestReaderJunk(t *testing.T) {
	t.Parallel()
	banner := "rst:0x1 (POWERON),boot:0x0 (DOWNLOAD(USB/UART0))\r\nwaiting for download\r\n"
	r := NewReader(strings.NewReader(banner + string(Encode([]byte{1}))))
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if r.Skipped() != len(banner) || string(r.Junk()) != banner {
		t.Fatalf("Skipped=%d Junk=%q, want %d %q", r.Skipped(), r.Junk(), len(banner), banner)
	}
}

// A timeout in the middle of a frame must not lose the bytes read so far.
func TestReaderTimeoutResumes(t *testing.T) {
	t.Parallel()
	in := append(Encode([]byte{1, 0xC0, 2}), Encode([]byte{3})...)
	r := NewReader(iotest.TimeoutReader(iotest.OneByteReader(bytes.NewReader(in))))
	var frames [][]byte
	timeouts := 0
	for len(frames) < 2 {
		f, err := r.ReadFrame()
		if errors.Is(err, iotest.ErrTimeout) {
			timeouts++
			if timeouts > 1 {
				break
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
	}
	// TimeoutReader times out once (second read) then returns data again.
	if timeouts != 1 || len(frames) != 2 || !bytes.Equal(frames[0], []byte{1, 0xC0, 2}) || !bytes.Equal(frames[1], []byte{3}) {
		t.Fatalf("frames % x, timeouts %d", frames, timeouts)
	}
}

func TestReaderMax(t *testing.T) {
	t.Parallel()
	r := NewReader(bytes.NewReader(append(Encode(make([]byte, 20)), Encode([]byte{5})...)))
	r.Max = 10
	if _, err := r.ReadFrame(); !errors.Is(err, ErrFrameTooLong) {
		t.Fatalf("err = %v, want ErrFrameTooLong", err)
	}
	// The rest of the long frame is junk; the next frame still arrives.
	f, err := r.ReadFrame()
	if err != nil || !bytes.Equal(f, []byte{5}) {
		t.Fatalf("after long frame: % x, %v", f, err)
	}
}

func TestReaderDiscard(t *testing.T) {
	t.Parallel()
	r := NewReader(bytes.NewReader(append([]byte{0xC0, 1, 2}, Encode([]byte{9})...)))
	r.Max = 100
	// Fill the buffer, then drop it: nothing of the stream is left.
	if r.Buffered() != 0 {
		t.Fatal("buffered before read")
	}
	r.r.Peek(1)
	r.Discard()
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("after Discard: %v, want EOF", err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add(syncFrame(f))
	f.Add([]byte{0xC0, 0xDB, 0xDC, 0xDB, 0xDD, 0xC0})
	f.Add([]byte{0xC0, 0xDB, 0x00, 0xC0})
	f.Add([]byte("waiting for download\r\n\xc0\x01\x08\x04\x00\x07\x07\x12\x20\x00\x00\x00\x00\xc0"))
	if seeds, err := os.ReadDir("testdata"); err == nil {
		for _, s := range seeds {
			if b, err := os.ReadFile("testdata/" + s.Name()); err == nil && strings.HasSuffix(s.Name(), ".bin") {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in))
		for i := 0; i < len(in)+1; i++ {
			frame, err := r.ReadFrame()
			if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrBadEscape) && !errors.Is(err, ErrFrameTooLong) {
					t.Fatalf("unexpected error %v", err)
				}
				if !strings.Contains(err.Error(), "offset") && !errors.Is(err, ErrFrameTooLong) {
					t.Fatalf("error %q names no offset", err)
				}
				continue
			}
			if len(frame) == 0 {
				t.Fatal("empty frame returned")
			}
			// What parses re-encodes to a frame that parses the same.
			again, err := NewReader(bytes.NewReader(Encode(frame))).ReadFrame()
			if err != nil || !bytes.Equal(again, frame) {
				t.Fatalf("round trip: % x -> % x, %v", frame, again, err)
			}
			body, err := Decode(Encode(frame)[1 : len(Encode(frame))-1])
			if err != nil || !bytes.Equal(body, frame) {
				t.Fatalf("Decode round trip: %v", err)
			}
		}
		t.Fatal("reader did not make progress")
	})
}
