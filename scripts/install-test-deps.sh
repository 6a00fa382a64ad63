#!/usr/bin/env bash
# Installs what `make test` needs on a fresh machine: the Go modules and the
# Debian packages of the real components the tests start themselves.
# Idempotent: a package already present is not installed again.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use (each test skips with a reason if one is missing).
PKGS=(
	openssl        # CMS interop checks (release), test CAs
	poppler-utils  # pdftotext: lot report PDF content
	rsyslog rsyslog-gnutls gnutls-bin  # the SIEM side of the audit forwarding test
	softhsm2 opensc                    # PKCS#11 token for release and SB v2 signing
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "install-test-deps: installing ${missing[*]}"
		# Wait for another apt run rather than failing on its lock; a failed install is
		# reported loudly but does not stop the suite: the tests that need the package
		# skip with a one-line reason.
		if ! { apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null &&
			DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
				--no-install-recommends "${missing[@]}" >/dev/null; }; then
			echo "install-test-deps: WARNING: could not install ${missing[*]}; tests needing them will skip" >&2
		fi
	else
		echo "install-test-deps: missing ${missing[*]} (not root or no apt-get); tests needing them will skip" >&2
	fi
fi

go mod download
