// Package evidence holds the per-device evidence record of a provisioning run
// (design.md, "What one board goes through", step 8 "Record"), its signature
// by the station key, its inclusion proof in the station's audit log, and the
// offline check of an evidence bundle that an auditor runs.
//
// # Record
//
// A Record is schema "fuseline.evidence/v2": who did what to which device,
// with which recipe and release, the eFuse state before and after, every step
// with its timing and result, every verification check ("verified" or "not
// verified, because …", never a silent skip) with how it was established
// (observed on a real board, computed on the host, or modelled by a virtual
// board or emulator: Establish), and the final verdict (PASS, FAIL or
// REFUSED with a reason). Records of the first schema, "fuseline.evidence/v1"
// (no establishment), still parse and verify; Record.Establishment says
// what can be told of theirs. Key material never enters a record: key blocks
// are carried as KeyDigest values (SHA-256 of the block), which only
// NewEfuseSnapshot and JSON decoding can make, and eFuse fields that hold key
// bits are refused by name.
//
// # Canonical form and signature
//
// The canonical bytes of a record are what Marshal returns: encoding/json of
// the Record struct (fields in declared order, maps sorted), indented by two
// spaces, times in UTC, empty lists as [], and one trailing newline. An
// evidence file holds exactly those bytes. The station signs them with its
// Ed25519 key (plain Ed25519 over the file bytes, no pre-hash, no context),
// and the signature is a detached file beside it, NAME.json.sig, holding the
// 64-byte signature in standard base64 and a newline. A detached file keeps
// the evidence readable and lets an auditor check it with any Ed25519 tool
// (`base64 -d NAME.json.sig > s; openssl pkeyutl -verify -pubin -inkey
// pub.pem -rawin -in NAME.json -sigfile s`). The same key signs the audit
// log's checkpoints as a note (golang.org/x/mod/sumdb/note); an evidence file
// can never be mistaken for a checkpoint because its first line is "{", not
// a log origin followed by a tree size.
//
// # Inclusion proof
//
// Every evidence file is in the station's audit log (a
// golang.org/x/mod/sumdb/tlog tree), in one of two ways: the leaf is the
// evidence file itself (leaf hash = tlog.RecordHash of the file bytes), or
// the leaf is an audit-log record (one JSON line, as reports/audit writes)
// whose details.evidence_sha256 is the SHA-256 of the file and whose device
// is the record's MAC; the proof then carries that record. NAME.json.proof
// holds an InclusionProof (JSON) with the leaf index, the tree size and root
// hash it proves against, the proof hashes, the leaf record if any and,
// optionally, the signed checkpoint note of that tree. A proof without its
// own checkpoint is checked against the bundle's checkpoint.
//
// # Bundle
//
// An evidence bundle is a directory or a tar file (optionally gzipped):
//
//	station.pub              the station's public key: a note verifier key line
//	                         (name+hash+base64) or a PEM "PUBLIC KEY" (Ed25519)
//	checkpoint               the audit log's signed checkpoint note
//	evidence/NAME.json       evidence files (without evidence/: any *.json outside images/)
//	evidence/NAME.json.sig   detached signatures
//	evidence/NAME.json.proof inclusion proofs
//	images/FILE              optional: the release images named by Image.File
//	audit.log                optional: the station's audit log
//	checkpoints/N.note       optional: its signed checkpoints
//
// A station's data directory is a bundle: it keeps its own state files
// beside evidence/, and EvidencePaths says which files are evidence.
//
// VerifyBundle re-checks offline every signature, every inclusion proof and
// checkpoint signature, and the SHA-256 of every image file present. With
// the audit log it also checks completeness: every result record of the log
// has its evidence file and every evidence file its result record, so a
// device's evidence cannot be removed unseen. The first failure is a
// *FileError naming the file.
package evidence
