package specs

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"
)

// slowLabels are the labels of the slow power-cut table's specs (its
// Describe's, its own, an entry's): what a label filter is matched against.
var slowLabels = []string{"powercut", "slow", "esp32s3"}

// slowWanted reports whether the slow specs (a power cut mid-command waits
// out the loader's timeouts) run: with FUSELINE_SOAK set, as make soak does,
// or with a label filter that names them.
func slowWanted(getenv func(string) string, labelFilter string) bool {
	return getenv("FUSELINE_SOAK") != "" || strings.Contains(labelFilter, "slow")
}

// TestMakeSoakRunsSlowSpecs: the slow table's skip message says make soak
// runs it, so one of make soak's go test commands must select TestSpecs,
// let its label filter through and pass its gate. (It ran only -run 'Soak',
// which no Ginkgo suite matches.)
func TestMakeSoakRunsSlowSpecs(t *testing.T) {
	t.Parallel()
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	cmds := recipeCommands(t, string(mk), "soak")
	for _, c := range cmds {
		env, args := splitCommand(c)
		if len(args) < 2 || args[0] != "go" || args[1] != "test" {
			continue
		}
		if !slices.ContainsFunc(args, func(a string) bool {
			return slices.Contains([]string{"./specs", "./specs/", "./specs/...", "./..."}, a)
		}) {
			continue
		}
		if re := flagValue(args, "-run"); re != "" && !regexp.MustCompile(re).MatchString("TestSpecs") {
			continue
		}
		filter := flagValue(args, "-ginkgo.label-filter")
		if filter != "" {
			lf, err := types.ParseLabelFilter(filter)
			if err != nil {
				t.Fatalf("make soak: label filter %q: %v", filter, err)
			}
			if !lf(slowLabels) {
				continue
			}
		}
		if slowWanted(func(k string) string { return env[k] }, filter) {
			return
		}
	}
	t.Fatalf("make soak does not run the specs' slow power-cut table; its commands: %q", cmds)
}

// recipeCommands returns the shell commands of target's recipe in a
// Makefile: continuation lines joined, $(GO) as go, $$ as $, split at ';'
// with a trailing "|| …" (the recipe's way of running on after a failure)
// dropped.
func recipeCommands(t *testing.T, mk, target string) []string {
	t.Helper()
	lines := strings.Split(mk, "\n")
	var recipe []string
	for i, l := range lines {
		if !strings.HasPrefix(l, target+":") {
			continue
		}
		for _, r := range lines[i+1:] {
			if !strings.HasPrefix(r, "\t") {
				break
			}
			recipe = append(recipe, strings.TrimPrefix(r, "\t"))
		}
	}
	if len(recipe) == 0 {
		t.Fatalf("Makefile has no recipe for %s", target)
	}
	text := strings.ReplaceAll(strings.Join(recipe, "\n"), "\\\n", " ")
	text = strings.NewReplacer("$(GO)", "go", "$$", "$").Replace(text)
	var out []string
	for _, line := range strings.Split(text, "\n") {
		for _, c := range strings.Split(strings.TrimLeft(line, "@-"), ";") {
			c, _, _ = strings.Cut(c, "||")
			if c = strings.TrimSpace(c); c != "" {
				out = append(out, c)
			}
		}
	}
	return out
}

// splitCommand splits a simple shell command into its leading NAME=value
// assignments and its words, removing single and double quotes.
func splitCommand(c string) (map[string]string, []string) {
	var words []string
	var w strings.Builder
	quote, inWord := rune(0), false
	for _, r := range c {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	env := map[string]string{}
	for len(words) > 0 {
		k, v, ok := strings.Cut(words[0], "=")
		if !ok || !regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(k) {
			break
		}
		env[k] = v
		words = words[1:]
	}
	return env, words
}

// flagValue is the value of flag name in args (-name=v or -name v).
func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}
