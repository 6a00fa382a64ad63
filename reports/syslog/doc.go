// Package syslog forwards messages to a SIEM as RFC 5424 syslog messages
// over TLS with octet-counting framing (RFC 5425), through a disk spool so
// that nothing is lost while the SIEM is unreachable.
//
// It follows RFC 5424 (message format, structured data, the "meta"
// sequenceId of §7.3.1), RFC 5425 (TLS transport, "MSG-LEN SP SYSLOG-MSG"
// framing) and the rsyslog recipe of docs/dependencies.md §3: timestamps
// carry exactly six fractional digits (rsyslog mangles nine), and with TLS
// 1.3 a server that rejects the client certificate is only noticed on the
// next read or write, so the forwarder keeps a reader on every connection.
//
// # Use
//
//	f, err := syslog.Open(ctx, syslog.Config{
//		Addr:  "siem.plant:6514",
//		TLS:   &tls.Config{RootCAs: ca, Certificates: []tls.Certificate{stationCert}},
//		Spool: "/var/lib/fuseline/spool",
//	})
//	go f.Run(ctx)                     // delivers until ctx ends
//	err = f.Send(ctx, msg1, msg2)     // durable in the spool when it returns nil
//	err = f.Flush(ctx)                // waits until the SIEM has everything
//	err = f.Close()
//
// # Delivery guarantee: at least once, in order
//
// Send assigns each message the next spool sequence number (1, 2, 3, …; it
// never restarts, the spool's state file remembers it), writes it to the
// current spool segment and fsyncs before returning. The message carries the
// number as the RFC 5424 structured-data element [meta sequenceId="N"]
// (wrapping from 2147483647 to 1 as §7.3.1 requires; the spool itself counts
// in 64 bits).
//
// Run sends messages strictly in sequence order over one TLS connection at a
// time. RFC 5425 has no acknowledgement, so a message counts as confirmed
// only when (1) the peer's TCP stack has acknowledged every byte written so
// far (the socket's send queue is empty, SIOCOUTQ on Linux) and (2) the
// connection then stayed up for Config.ConfirmAfter (default 1 s) — a SIEM
// that dies resets or closes the connection, which the reader sees at once.
// When a connection fails, every unconfirmed message is sent again, in order,
// on the next connection. A receiver can therefore see a message twice, but
// never a gap and never a later message before an earlier one in first-seen
// order; it drops duplicates by sequenceId (or, for audit records, by the
// record's seq and leaf hash). Confirmed messages are deleted from the spool
// a segment at a time.
//
// Crash behaviour: Send returns only after fsync, so a message Send
// accepted survives a crash. A torn entry at the end of the last segment (a
// Send that never returned) is cut off on Open and logged. The audit log
// (reports/audit) re-sends anything it had not handed over, so the pair loses
// nothing.
//
// # Spool layout
//
// Config.Spool holds seg-<first seq, 20 digits>.spool files, each a run of
// entries "<seq> <len> <len bytes of RFC 5424 message>\n", and "confirmed",
// the last confirmed sequence number as a fixed-width decimal line.
package syslog
