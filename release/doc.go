// Package release holds Fuseline's signed releases: the manifest that names
// every image of a release with its flash region and SHA-256, its detached
// CMS (RFC 5652) signature by an X.509 (RFC 5280) code-signing certificate,
// the station policy that decides whether a release is accepted (trust
// anchors, extended key usage, signer names, validity, CRLs, anti-rollback),
// and the streamed verification of the images themselves.
//
// It implements the Intake step of docs/design.md ("What one board goes
// through", step 1): nothing touches a board before the release is
// authenticated. The flow is the low-memory one:
//
//  1. Open reads manifest.json and manifest.json.p7s (both small) and
//     authenticates them against the Policy. The manifest carries every
//     image's size and SHA-256.
//  2. Each image then streams through an ImageReader, block by block, from
//     its file to wherever it goes (the flasher, a sub-device link, or
//     nowhere when only verifying). The reader fails with a *RegionError on
//     the first byte past the declared size, on a short file, or on a hash
//     mismatch before it hands over the last block, so no consumer ever
//     receives a complete image that was not authentic.
//  3. Finish re-reads manifest and signature, checks they are the bytes that
//     were authenticated, authenticates them again, and only then records
//     the accepted version in the station's anti-rollback state.
//
// On disk a release is a directory holding manifest.json, manifest.json.p7s
// (DER, detached SignedData over the exact bytes of manifest.json) and the
// files the manifest names, so any CMS tool (openssl cms) can sign or check
// it. The manifest is JSON in the canonical form described at Marshal.
//
// Signing keys come from a PEM file for tests or a PKCS#11 token for
// production (package release/pkcs11); either way the signer is a
// crypto.Signer, and the same token signs the images' Secure Boot v2 blocks
// (esp/secureboot) in Create, so the offline keys never leave the HSM.
package release
