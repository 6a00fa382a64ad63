#!/usr/bin/env bash
# Runs every fuzz target in the module for a short budget each.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-20s}
status=0
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for t in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "== $pkg $t ($budget)"
		go test -run='^$' -fuzz="^${t}\$" -fuzztime="$budget" -fuzzminimizetime=5s "$pkg" || status=1
	done
done
exit $status
