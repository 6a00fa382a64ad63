package secureboot

import (
	"crypto/sha256"
	"testing"
)

// BenchmarkVerify measures Secure Boot v2 verification of a 1 MiB image
// signed with one key (SHA-256 of the content, block parse with the R²/M′
// checks, key digest, RSA-3072 PSS check). The SHA-256 sub-benchmark over
// the same bytes is the floor, measured in the same run.
func BenchmarkVerify(b *testing.B) {
	content := make([]byte, 1<<20)
	for i := range content {
		content[i] = byte(i * 7)
	}
	signed, err := Sign(content, privKey(b, "key1.pem"))
	if err != nil {
		b.Fatal(err)
	}
	pub := pubKey(b, "key1.pub.pem")
	mbps := func(b *testing.B) {
		b.ReportMetric(float64(len(content))*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
	}

	b.Run("sbv2-1MiB", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Verify(signed, pub); err != nil {
				b.Fatal(err)
			}
		}
		mbps(b)
	})
	b.Run("sha256-1MiB-baseline", func(b *testing.B) {
		for b.Loop() {
			sha256.Sum256(content)
		}
		mbps(b)
	})
}
