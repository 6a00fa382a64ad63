package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// isTerminal reports whether w is a terminal, where progress is a bar
// redrawn in place; elsewhere (logs, CI, pipes) it is one line per event.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// barText draws done of total as "[#####.....]  50%".
func barText(done, total int64) string {
	const width = 30
	pct := min(max(done*100/total, 0), 100)
	n := int(pct) * width / 100
	return fmt.Sprintf("[%s%s] %3d%%", strings.Repeat("#", n), strings.Repeat(".", width-n), pct)
}
