package release_test

import (
	"syscall"
	"time"
)

// threadCPU is the CPU time (user+system) of the calling OS thread; the
// caller must runtime.LockOSThread. Unlike wall time it does not grow when
// other processes load the machine.
func threadCPU() (time.Duration, bool) {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
