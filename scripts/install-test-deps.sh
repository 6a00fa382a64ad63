#!/usr/bin/env bash
# Installs what `make test` needs on a fresh machine: the Go modules and the
# Debian packages of the real components the tests start themselves.
# Idempotent: a package already present is not installed again.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use (each test skips with a reason if one is missing).
PKGS=(${FUSELINE_TEST_PKGS:-})

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "install-test-deps: installing ${missing[*]}"
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	else
		echo "install-test-deps: missing ${missing[*]} (not root or no apt-get); tests needing them will skip" >&2
	fi
fi

go mod download
