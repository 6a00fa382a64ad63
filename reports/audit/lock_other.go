//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly)

package audit

import "os"

// lockFile is a no-op where flock does not exist; run one station process
// per data directory there.
func lockFile(*os.File) error { return nil }
