package cli

import (
	"context"

	"fuseline/internal/inputfile"
)

// Limits of the files commands read whose kind has no home of its own;
// the others come from their packages (image.MaxFlashBytes,
// partition.MaxFile, efuse.MaxInput, evidence.MaxRecordSize,
// audit.MaxCheckpointFile, recipe.MaxSize).
const (
	maxKeyFile  = 64 << 10 // a PEM or raw key, a certificate chain, a CA bundle
	maxStubFile = 4 << 20  // an esptool flasher-stub JSON (about 100 KiB)
	maxTextFile = 1 << 20  // a fixture file, a release manifest or signature
)

// readInput reads a file named on the command line: a regular file (a
// FIFO, device or directory is refused at once, never waited on) of at
// most limit bytes. Failing to is a usage error (exit 2) naming the file
// and why.
func readInput(what, path string, limit int64) ([]byte, error) {
	return readInputContext(context.Background(), what, path, limit)
}

func readInputContext(ctx context.Context, what, path string, limit int64) ([]byte, error) {
	b, err := inputfile.ReadFile(ctx, path, limit)
	if err != nil {
		return nil, usageErr("read %s: %w", what, err)
	}
	return b, nil
}
