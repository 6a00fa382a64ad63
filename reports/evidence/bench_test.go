package evidence_test

import (
	"encoding/json"
	"testing"

	"fuseline/reports/evidence"
	"fuseline/reports/evidence/evidencetest"
)

// BenchmarkVerifyBundle measures the auditor's check: evidence files per
// second, signature, proof and checkpoint included.
func BenchmarkVerifyBundle(b *testing.B) {
	st := evidencetest.NewStation(1)
	const n = 200
	bundle, err := st.Bundle(evidencetest.Lot(evidencetest.LotOptions{N: n}), evidencetest.BundleOptions{Images: true, Noise: 8})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := evidence.VerifyBundle(b.Context(), bundle, evidence.VerifyOptions{Key: st.Key}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "files/s")
}

// BenchmarkParse measures parsing a canonical evidence file, against
// encoding/json alone into the same struct as the baseline.
func BenchmarkParse(b *testing.B) {
	data, err := evidence.Marshal(evidencetest.Board(evidencetest.LotOptions{}, 0))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("json.Unmarshal-baseline", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var r evidence.Record
			if err := json.Unmarshal(data, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Parse", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := evidence.Parse(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Canonical", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := evidence.Canonical(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
