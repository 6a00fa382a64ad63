package audit

import (
	"crypto/sha256"

	"golang.org/x/mod/sumdb/tlog"
)

// frontier is the right edge of an RFC 6962 Merkle tree: the roots of the
// maximal complete subtrees, largest first. Appending a leaf and computing
// the root both take O(log n) time and space, so neither the log nor the
// verifier keeps the whole tree.
type frontier struct {
	n      int64       // leaves so far
	nodes  []tlog.Hash // nodes[i] covers 2^levels[i] leaves
	levels []int
}

func (f *frontier) add(leaf tlog.Hash) {
	f.nodes = append(f.nodes, leaf)
	f.levels = append(f.levels, 0)
	f.n++
	for k := len(f.nodes); k >= 2 && f.levels[k-1] == f.levels[k-2]; k-- {
		f.nodes[k-2] = tlog.NodeHash(f.nodes[k-2], f.nodes[k-1])
		f.levels[k-2]++
		f.nodes = f.nodes[:k-1]
		f.levels = f.levels[:k-1]
	}
}

// root is tlog.TreeHash of the leaves so far (for none, RFC 6962's
// SHA-256 of the empty string).
func (f *frontier) root() tlog.Hash {
	if len(f.nodes) == 0 {
		return sha256.Sum256(nil)
	}
	h := f.nodes[len(f.nodes)-1]
	for i := len(f.nodes) - 2; i >= 0; i-- {
		h = tlog.NodeHash(f.nodes[i], h)
	}
	return h
}
