// Package inputfile opens and reads the files a user names (recipes, keys,
// images, dumps, audit logs) so that a wrong name cannot hang the station or
// run it out of memory: only regular files are read (a FIFO, /dev/zero or a
// terminal is refused at once, never waited on), a read stops at a limit the
// caller sets for the kind of file, and a long read stops when its context is
// cancelled (SIGINT, SIGTERM, an operator's Stop).
//
// The limits themselves live with the kinds they bound (a flash image by the
// largest flash in esp/chip, a partition table by its sector, a recipe by the
// recipe package); this package only enforces them.
package inputfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrNotRegular: the path names a directory, device, FIFO or socket.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge: the file is longer than the limit for its kind.
var ErrTooLarge = errors.New("too large")

// Error says which file could not be read and why. It never holds the
// file's content.
type Error struct {
	Path   string
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Reason == "" {
		return e.Path + ": " + e.Err.Error()
	}
	return e.Path + ": " + e.Reason
}

func (e *Error) Unwrap() error { return e.Err }

// chunk is how much is read between two looks at the context.
const chunk = 1 << 20

// Open opens path for reading if it is a regular file (after following
// symlinks). The open itself never blocks: it uses O_NONBLOCK, so a FIFO
// with no writer is seen and refused instead of waited on. The caller
// streams the file and closes it.
func Open(ctx context.Context, path string) (*os.File, os.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, &Error{Path: path, Err: err}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|nonblock, 0)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, nil, &Error{Path: path, Err: fmt.Errorf("%w", err)}
	}
	return checkRegular(f, path)
}

// OpenIn is Open for name inside root (which keeps a release's file names
// from leaving its directory).
func OpenIn(ctx context.Context, root *os.Root, name string) (*os.File, os.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, &Error{Path: name, Err: err}
	}
	f, err := root.OpenFile(name, os.O_RDONLY|nonblock, 0)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, nil, &Error{Path: name, Err: fmt.Errorf("%w", err)}
	}
	return checkRegular(f, name)
}

func checkRegular(f *os.File, path string) (*os.File, os.FileInfo, error) {
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, &Error{Path: path, Err: err}
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, &Error{Path: path, Reason: "not a regular file (" + kind(st.Mode()) + "); give a file", Err: ErrNotRegular}
	}
	return f, st, nil
}

// ReadFile reads the regular file path, refusing it when it is longer than
// limit bytes. It checks ctx between chunks.
func ReadFile(ctx context.Context, path string, limit int64) ([]byte, error) {
	f, st, err := Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st.Size() > limit {
		return nil, tooLarge(path, limit)
	}
	return read(ctx, path, f, limit, st.Size())
}

// Check is Open without keeping the file: path is a regular file no longer
// than limit (limit < 0: any length), for callers that read it through
// another package's API.
func Check(ctx context.Context, path string, limit int64) error {
	f, st, err := Open(ctx, path)
	if err != nil {
		return err
	}
	f.Close()
	if limit >= 0 && st.Size() > limit {
		return tooLarge(path, limit)
	}
	return nil
}

// Reader wraps r so that reads fail once ctx is done: a long stream (an
// audit log) stops on SIGINT instead of running to its end.
func Reader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func read(ctx context.Context, path string, f *os.File, limit, size int64) ([]byte, error) {
	// The file may grow after Stat: read at most limit+1 bytes to see it.
	buf := make([]byte, 0, min(size, limit)+1)
	for {
		if err := ctx.Err(); err != nil {
			return nil, &Error{Path: path, Err: err}
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		want := min(cap(buf)-len(buf), chunk)
		n, err := f.Read(buf[len(buf) : len(buf)+want])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, tooLarge(path, limit)
		}
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, &Error{Path: path, Err: err}
		}
	}
}

func tooLarge(path string, limit int64) error {
	return &Error{Path: path, Reason: fmt.Sprintf("larger than %s, the most this kind of file can be", sizeText(limit)), Err: ErrTooLarge}
}

func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "mode " + m.String()
}
