package cli

import (
	"bytes"
	"testing"
)

func TestBarText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		done, total int64
		want        string
	}{
		{0, 10, "[..............................]   0%"},
		{5, 10, "[###############...............]  50%"},
		{10, 10, "[##############################] 100%"},
		{12, 10, "[##############################] 100%"}, // a late event never overdraws
		{1, 3, "[#########.....................]  33%"},
	} {
		if got := barText(tc.done, tc.total); got != tc.want {
			t.Errorf("barText(%d, %d) = %q, want %q", tc.done, tc.total, got, tc.want)
		}
	}
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is not a terminal")
	}
}
