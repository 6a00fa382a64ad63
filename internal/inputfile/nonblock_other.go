//go:build !unix

package inputfile

// nonblock: no FIFOs to wait on here.
const nonblock = 0
