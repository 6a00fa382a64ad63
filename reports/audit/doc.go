// Package audit is the station's tamper-evident audit log: one record per
// event (run start, intake result, each eFuse burn, each flash region
// written and verified, lock, result, operator sign-in, recipe or
// configuration change), each with time, station, operator, device, event
// ID and result; every record chained to the one before and a leaf of a
// Merkle tree whose roots are signed as checkpoints.
//
// It follows docs/design.md ("Record": audit-log entries for every step
// with operator identity; reports/: hash-chained, Merkle checkpoints,
// syslog/TLS forwarding), the C2SP tlog-checkpoint and signed-note formats
// (golang.org/x/mod/sumdb/note, Ed25519) and RFC 6962 Merkle hashing
// (golang.org/x/mod/sumdb/tlog), per docs/dependencies.md.
//
// # Station data directory
//
// Config.Dir (default DefaultDir, "fuseline-data"; Layout names the files):
//
//	audit.log            records, one canonical JSON object per line
//	checkpoints/N.note   signed checkpoint of the first N records (N in 20 digits)
//	station.key          note signer key (Ed25519), 0600, created on first use
//	station.pub          note verifier key "<origin>+<hash8>+<base64>"
//	forward.cursor       how far the Sink got (only with Config.Forward)
//	evidence/            per-device evidence, written by reports/evidence
//	audit.log.torn-OFF   bytes of a torn last record set aside by Open (if any)
//
// # Record format
//
// A record line is the JSON of Record with fields in this order and no
// spaces (Record.Marshal; ParseRecord accepts only this form):
//
//	{"seq":0,"time":"2026-11-21T10:00:00.123456Z","station":"st-01","operator":"alice",
//	 "device":"aa:bb:cc:dd:ee:ff","run":"r-42","event":"efuse.burn","id":"ev-…",
//	 "result":"ok","details":{"field":"SPI_BOOT_CRYPT_CNT"},"prev":"<base64 hash>"}
//
// seq is the 0-based index; time is UTC with at most microsecond precision
// (syslog carries six fractional digits); device, run and details are
// omitted when empty. The leaf hash of a record is tlog.RecordHash(line)
// (SHA-256 of 0x00 ‖ line); prev is the leaf hash of the record before
// (all zero for record 0). The Merkle tree is RFC 6962's over the leaves in
// order, so its root for the first N records is tlog.TreeHash(N, …).
//
// # Checkpoints
//
// A checkpoint is the C2SP body "<origin>\n<size>\n<base64 root>\n" signed
// as a note with the station key; origin defaults to
// "fuseline/audit/<station>" and is also the key's name. The log signs one
// at every EventResult (the end of a run), every Config.CheckpointEvery
// records (default 1000), on Checkpoint and on Close; it always fsyncs
// first, so a checkpoint never covers a record that is not on disk.
//
// # Secrets
//
// Records hold no key material, and the API is shaped to make that hard to
// get wrong: there is no []byte field; Details values are short printable
// strings; Details.Validate refuses keys that name a secret (key, secret,
// password, pin, private, token, seed, plaintext … unless the name ends in
// a fact such as _digest, _block, _purpose, _id), values holding PEM blocks
// or note private keys, and any run of 32+ hex digits or 40+ base64
// characters unless the key name ends in _digest, _hash, _sha256, _md5,
// _fingerprint, _root or _leaf. The same rule covers operator, run, event
// ID and device. Errors name the field, never the value. TestNoKeyMaterial
// tries a key in every field and encoding and checks the file afterwards.
//
// # Crash safety
//
// With SyncRunBoundary (the default) the log is fsynced at run.start and
// result, before every checkpoint and on Close; SyncEveryRecord fsyncs
// each record. A crash can therefore leave a torn last line. Open detects
// it and never drops it silently: if the line is a complete record that
// chains (only the newline is missing), Open adds the newline; otherwise it
// saves the bytes to audit.log.torn-<offset>, cuts them off, and in both
// cases appends a "log.recover" record (with the torn bytes' SHA-256) and
// logs a warning. With Config.RefuseTorn, Open returns a *VerifyError
// instead. Verify reports a torn last line as ProblemTorn. Records before
// it are unaffected. Any other damage makes Open fail with *VerifyError.
//
// # Verification
//
// Verify (and `fuseline audit verify`) reads the log once in O(log n)
// memory and checks: every line is a canonical record, seq counts 0, 1, 2 …,
// every prev matches, the last line is complete, each checkpoint's
// signature, and that the first N records hash to each checkpoint's root.
// Around each break it re-reads a few lines and says what happened: an
// edited, deleted, inserted or reordered record, a truncated or torn end,
// with line (1-based) and record (0-based seq). An edit of the last record
// a checkpoint covers, or a rewritten chain, is found by the root check.
// Records after the newest checkpoint can be cut off undetected; the
// report says how many there are.
//
// # Proofs (for reports/evidence)
//
//	log.Append(ctx, audit.Entry{…, Event: audit.EventResult})  // signs a checkpoint
//	p, err := log.ProveDevice(ctx, "aa:bb:cc:dd:ee:ff")        // *Proofs vs the latest checkpoint
//	err = p.Check(log.Verifier())                              // what an auditor does offline
//
// Proofs holds the signed checkpoint note, and per record the exact line,
// its leaf hash and its RFC 6962 audit path. ProveDevice and ProveRecords
// also work on any io.Reader of a log with a SignedCheckpoint from
// OpenCheckpoint. CheckInclusion checks one proof.
//
// # Forwarding to a SIEM
//
// With Config.Forward (a *syslog.Forwarder, or any Sink) every record and
// checkpoint is handed over in log order once it is on disk (after the
// fsync of its run boundary, or at once with SyncEveryRecord), as
// RecordMessage / CheckpointMessage build them: RFC 5424, structured data
// with seq, device, event, result, leaf hash and tree size, the record line
// as MSG. forward.cursor remembers how far the Sink got; if the Sink fails,
// or the station crashed in between, the log re-sends from the cursor, from
// the file, at the next sync and on Open. Delivery is at least once and in
// order; duplicates carry the same seq and leaf and are dropped by the SIEM.
// See reports/syslog for the transport's own guarantee. Wiring:
//
//	lay := audit.NewLayout(dir)
//	fwd, err := syslog.Open(ctx, syslog.Config{Addr: siem, TLS: mtls, Spool: lay.Spool})
//	go fwd.Run(ctx)
//	log, err := audit.Open(ctx, audit.Config{Dir: dir, Station: "st-01", Forward: fwd})
//	…
//	log.Close(ctx) // first: signs the last checkpoint and hands it over
//	fwd.Close()
//
// # API summary
//
//	func Open(ctx context.Context, cfg Config) (*Log, error)
//	func (l *Log) Append(ctx context.Context, e Entry) (Receipt, error)
//	func (l *Log) Sync(ctx context.Context) error
//	func (l *Log) Checkpoint(ctx context.Context) (SignedCheckpoint, error)
//	func (l *Log) Latest() (SignedCheckpoint, bool)
//	func (l *Log) ProveDevice(ctx context.Context, device string) (*Proofs, error)
//	func (l *Log) Verifier() note.Verifier
//	func (l *Log) Layout() Layout
//	func (l *Log) Close(ctx context.Context) error
//	func Verify(ctx context.Context, r io.ReadSeeker, opts VerifyOptions) (*Report, error)
//	func ProveDevice(ctx context.Context, r io.Reader, sc SignedCheckpoint, device string) (*Proofs, error)
//	func ProveRecords(ctx context.Context, r io.Reader, sc SignedCheckpoint, indexes ...int64) (*Proofs, error)
//	func CheckInclusion(inc Inclusion, c Checkpoint) error
//	func (p *Proofs) Check(v note.Verifier) error
//	func OpenCheckpoint(msg []byte, v note.Verifier) (SignedCheckpoint, error)
//	func ReadCheckpoints(dir string) ([]CheckpointFile, error)
//	func ReadVerifier(path string) (note.Verifier, error)
package audit
