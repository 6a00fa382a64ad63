//go:build !linux

package release_test

import "time"

func threadCPU() (time.Duration, bool) { return 0, false }
