package slip

import (
	"bytes"
	"testing"
)

// Worst case for escaping: every byte needs two on the wire.
func benchPayload(escapes bool) []byte {
	b := make([]byte, 0x4000+16)
	for i := range b {
		b[i] = byte(i)
		if escapes && i%2 == 0 {
			b[i] = End
		}
	}
	return b
}

func BenchmarkEncode(b *testing.B) {
	for _, esc := range []bool{false, true} {
		p := benchPayload(esc)
		b.Run(map[bool]string{false: "plain", true: "half-escaped"}[esc], func(b *testing.B) {
			dst := make([]byte, 0, 2*len(p)+2)
			for b.Loop() {
				dst = AppendEncode(dst[:0], p)
			}
			b.ReportMetric(float64(len(p))*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
		})
	}
}

func BenchmarkReader(b *testing.B) {
	frame := Encode(benchPayload(true))
	stream := bytes.Repeat(frame, 16)
	for b.Loop() {
		r := NewReader(bytes.NewReader(stream))
		for range 16 {
			if _, err := r.ReadFrame(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(stream))*float64(b.N)/b.Elapsed().Seconds()/1e6, "wire-MB/s")
}
