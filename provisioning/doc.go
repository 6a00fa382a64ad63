// Package provisioning is the end-of-line flow that makes a blank ESP32-S3,
// ESP32-C3 (or classic ESP32) board trustworthy and records that it did:
// release intake, connect, read the eFuses, plan, burn keys, flash,
// re-verify, lock, final read-back, boot check and evidence (docs/design.md,
// "What one board goes through", steps 1–8).
//
// The order of the eFuse burns and the traps around them follow
// docs/esp-security-facts.md §6 exactly: the per-device flash-encryption key
// first (read- and write-protected, purpose write-protected),
// SPI_BOOT_CRYPT_CNT, then the images, then the flash-encryption lockdown
// with WR_DIS bit 2, the Secure Boot v2 digests, SECURE_BOOT_EN, the Secure
// Boot lockdown, the RD_DIS write protection, the revocations, the
// anti-rollback floor (§3.9; WR_DIS bit 18 is never set, so SECURE_VERSION
// can still rise in the field), and very last ENABLE_SECURITY_DOWNLOAD or
// DIS_DOWNLOAD_MODE. Everything that needs register access (burns, MD5,
// read-back) is done before that last burn.
//
// The pieces:
//
//   - Intake authenticates a release (an ESP-IDF build directory read
//     through flasher_args.json, or a signed Fuseline release) against a
//     recipe (package provisioning/recipe) before any board is touched.
//   - NewPlan compares the recipe's desired eFuse state with a board's and
//     returns the burn steps, or a *ConflictError (ErrConflict) for a board
//     that must be refused rather than "fixed". WritePlan renders a plan
//     for --dry-run and approval.
//   - Run drives one Board (an io.ReadWriter plus a flasher.Resetter,
//     style.md practice 3) through the whole flow. Every step is journaled
//     (package provisioning/journal) before and after; a re-run after a
//     crash or a pulled cable reconciles the journal with the board's
//     eFuses and completes, never burning a different value. Progress goes
//     to Config.Progress as Events; approval is Config.Approve (only the
//     CLI prompts).
//   - The evidence record (reports/evidence, fuseline.evidence/v1) and audit
//     records (reports/audit) go into the station data directory.
//
// Secrets: the per-device key comes from Config.Rand (crypto/rand), lives in
// a 0600 file beside the journal until the run passes, and is then
// zeroised, or sealed to the recipe's age recipient when escrow is on. It
// never appears in events, errors, journal records or evidence (key blocks
// are carried as SHA-256 digests).
package provisioning
