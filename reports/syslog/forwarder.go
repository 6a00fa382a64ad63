package syslog

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
)

// Config says where to forward and how. The zero value of every field but
// Addr, TLS and Spool is a sensible default. Open does not modify it.
type Config struct {
	// Addr is the SIEM's RFC 5425 listener, host:port (6514 is the IANA port).
	Addr string
	// TLS is the client configuration: RootCAs to check the SIEM, and the
	// station's client certificate for mutual TLS. ServerName defaults to
	// Addr's host. Required.
	TLS *tls.Config
	// Spool is the spool directory (created 0700 if missing). Required.
	Spool string
	// SegmentSize is the size at which a new spool segment starts; 0: 8 MiB.
	SegmentSize int64
	// ConfirmAfter is how long a connection must stay up after the SIEM's
	// TCP stack acknowledged a message before the message is confirmed and
	// leaves the spool; 0: 1 s.
	ConfirmAfter time.Duration
	// DialTimeout bounds TCP connect plus TLS handshake; 0: 10 s.
	DialTimeout time.Duration
	// WriteTimeout bounds one write to the SIEM; 0: 10 s.
	WriteTimeout time.Duration
	// RetryMin and RetryMax bound the reconnect back-off, which doubles from
	// RetryMin after each failed attempt; 0: 100 ms and 5 s.
	RetryMin, RetryMax time.Duration
	// Log receives connection state changes; nil: discard.
	Log *slog.Logger
}

// Stats is a snapshot of the forwarder's progress.
type Stats struct {
	Spooled   int64 // sequence number of the last message accepted by Send
	Confirmed int64 // sequence number up to which the SIEM has everything
	Pending   int64 // messages in the spool not yet confirmed
	Connected bool
	Connects  int64  // successful connections so far
	Resent    int64  // messages sent again after a connection was lost
	LastError string // the last connection error, even if reconnected since; "" if none
}

// ErrClosed is returned by Send, Run and Flush after Close.
var ErrClosed = errors.New("syslog: forwarder is closed")

// Forwarder spools messages and delivers them to one SIEM. Send and Flush
// may be called from any goroutine; Run must run (once) for delivery.
type Forwarder struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	sp        *spool
	wake      chan struct{} // Send → Run: new messages
	progress  chan struct{} // closed and replaced when Confirmed moves
	closed    bool
	stop      chan struct{} // closed by Close
	runDone   chan struct{} // non-nil while Run runs
	connected bool
	connects  int64
	resent    int64
	maxSent   int64
	lastErr   error
}

// Open opens (or creates) the spool and returns a Forwarder. Messages left
// in the spool from an earlier process are delivered first once Run starts.
func Open(ctx context.Context, cfg Config) (*Forwarder, error) {
	if cfg.Addr == "" {
		return nil, errors.New("syslog: Config.Addr is empty")
	}
	if cfg.TLS == nil {
		return nil, errors.New("syslog: Config.TLS is nil; RFC 5425 needs TLS")
	}
	if cfg.Spool == "" {
		return nil, errors.New("syslog: Config.Spool is empty")
	}
	if cfg.SegmentSize <= 0 {
		cfg.SegmentSize = 8 << 20
	}
	if cfg.ConfirmAfter <= 0 {
		cfg.ConfirmAfter = time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Second
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = cfg.RetryMin
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sp, err := openSpool(ctx, cfg.Spool, cfg.SegmentSize, log)
	if err != nil {
		return nil, err
	}
	return &Forwarder{
		cfg:      cfg,
		log:      log,
		sp:       sp,
		wake:     make(chan struct{}, 1),
		progress: make(chan struct{}),
		stop:     make(chan struct{}),
		maxSent:  sp.confirmed,
	}, nil
}

// Send adds msgs to the spool, in order, and returns once they are on disk
// (fsync). Each gets the next sequence number as [meta sequenceId="N"]
// before its own structured data; msgs must not carry a "meta" element.
// Either all of msgs are spooled or none.
func (f *Forwarder) Send(ctx context.Context, msgs ...Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	bufs := make([][]byte, len(msgs))
	for i := range msgs {
		m := msgs[i]
		for _, e := range m.Data {
			if e.ID == MetaID {
				return &FieldError{"sd-id", "message " + strconv.Itoa(i) + " carries its own \"meta\" element; the forwarder sets sequenceId"}
			}
		}
		seq := f.sp.next + int64(i)
		m.Data = append([]Element{{ID: MetaID, Params: []Param{{"sequenceId", strconv.FormatInt(metaSeq(seq), 10)}}}}, m.Data...)
		b, err := m.Format()
		if err != nil {
			return fmt.Errorf("syslog: message %d of %d: %w", i, len(msgs), err)
		}
		bufs[i] = b
	}
	if err := f.sp.add(bufs); err != nil {
		return err
	}
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return nil
}

// metaSeq maps the 64-bit spool sequence to RFC 5424's 1..2147483647.
func metaSeq(seq int64) int64 { return (seq-1)%2147483647 + 1 }

// Flush waits until every message spooled before the call is confirmed, or
// ctx ends.
func (f *Forwarder) Flush(ctx context.Context) error {
	f.mu.Lock()
	target := f.sp.next - 1
	f.mu.Unlock()
	for {
		f.mu.Lock()
		done, closed, ch := f.sp.confirmed >= target, f.closed, f.progress
		f.mu.Unlock()
		if done {
			return nil
		}
		if closed {
			return ErrClosed
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("syslog: flush to %s: %d messages still unconfirmed: %w", f.cfg.Addr, f.Stats().Pending, ctx.Err())
		case <-ch:
		}
	}
}

// Stats returns a snapshot of the forwarder's progress.
func (f *Forwarder) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := Stats{
		Spooled:   f.sp.next - 1,
		Confirmed: f.sp.confirmed,
		Pending:   f.sp.pending(),
		Connected: f.connected,
		Connects:  f.connects,
		Resent:    f.resent,
	}
	if f.lastErr != nil {
		s.LastError = f.lastErr.Error()
	}
	return s
}

// Close stops Run (if running), waits for it and closes the spool.
// Unconfirmed messages stay in the spool for the next Open.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	close(f.stop)
	close(f.progress)
	done := f.runDone
	f.mu.Unlock()
	if done != nil {
		<-done
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sp.close()
}

// Run delivers spooled messages until ctx ends or Close is called,
// reconnecting with back-off. It returns ctx.Err() or ErrClosed.
func (f *Forwarder) Run(ctx context.Context) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ErrClosed
	}
	if f.runDone != nil {
		f.mu.Unlock()
		return errors.New("syslog: Run is already running")
	}
	done := make(chan struct{})
	f.runDone = done
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.runDone = nil
		f.connected = false
		f.mu.Unlock()
		close(done)
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-f.stop:
			cancel()
		case <-ctx.Done():
		}
	}()

	backoff := f.cfg.RetryMin
	for {
		if ctx.Err() != nil {
			return f.runErr(ctx)
		}
		conn, raw, err := f.dial(ctx)
		if err == nil {
			var progressed bool
			progressed, err = f.serve(ctx, conn, raw)
			conn.Close()
			if progressed {
				backoff = f.cfg.RetryMin
			}
		}
		if ctx.Err() != nil {
			return f.runErr(ctx)
		}
		f.mu.Lock()
		f.connected = false
		f.lastErr = err
		f.mu.Unlock()
		f.log.Warn("syslog: SIEM connection failed; retrying", "addr", f.cfg.Addr, "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return f.runErr(ctx)
		case <-t.C:
		}
		backoff = min(2*backoff, f.cfg.RetryMax)
	}
}

func (f *Forwarder) runErr(ctx context.Context) error {
	select {
	case <-f.stop:
		return ErrClosed
	default:
		return ctx.Err()
	}
}

func (f *Forwarder) dial(ctx context.Context) (*tls.Conn, net.Conn, error) {
	d := net.Dialer{Timeout: f.cfg.DialTimeout}
	raw, err := d.DialContext(ctx, "tcp", f.cfg.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("syslog: dial %s: %w", f.cfg.Addr, err)
	}
	tc := f.cfg.TLS.Clone()
	if tc.ServerName == "" {
		if host, _, err := net.SplitHostPort(f.cfg.Addr); err == nil {
			tc.ServerName = host
		}
	}
	if tc.MinVersion == 0 {
		tc.MinVersion = tls.VersionTLS12 // RFC 9662 updates RFC 5425: 1.2 or later
	}
	conn := tls.Client(raw, tc)
	hctx, cancel := context.WithTimeout(ctx, f.cfg.DialTimeout)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, nil, fmt.Errorf("syslog: TLS handshake with %s: %w", f.cfg.Addr, err)
	}
	f.mu.Lock()
	f.connected = true
	f.connects++
	f.mu.Unlock()
	f.log.Info("syslog: connected to SIEM", "addr", f.cfg.Addr, "tls", tls.VersionName(conn.ConnectionState().Version))
	return conn, raw, nil
}

type ackMark struct {
	seq int64
	at  time.Time
}

// maxBatch bounds the bytes written in one Write.
const maxBatch = 256 << 10

// serve sends from the first unconfirmed message on, in order, until the
// connection fails or ctx ends. It reports whether anything was confirmed.
func (f *Forwarder) serve(ctx context.Context, conn *tls.Conn, raw net.Conn) (progressed bool, err error) {
	dead := make(chan struct{})
	var readErr error
	go func() {
		// The SIEM sends nothing; a read returns only when the connection
		// ends, which is how a TLS 1.3 client-certificate rejection shows.
		buf := make([]byte, 512)
		for {
			if _, err := conn.Read(buf); err != nil {
				readErr = err
				close(dead)
				return
			}
		}
	}()
	defer func() {
		conn.Close()
		<-dead
	}()
	deadErr := func() error {
		if errors.Is(readErr, net.ErrClosed) {
			return fmt.Errorf("syslog: connection to %s closed", f.cfg.Addr)
		}
		return fmt.Errorf("syslog: connection to %s lost (closed by the SIEM or its TLS rejected us): %w", f.cfg.Addr, readErr)
	}

	f.mu.Lock()
	sent := f.sp.confirmed // last sequence number written on this connection
	f.mu.Unlock()
	acked := sent
	var marks []ackMark
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var buf []byte
	for {
		// Write everything spooled, in batches.
		for {
			buf = buf[:0]
			f.mu.Lock()
			last := f.sp.next - 1
			s := sent + 1
			for ; s <= last && len(buf) < maxBatch; s++ {
				msg, rerr := f.sp.read(s)
				if rerr != nil {
					f.mu.Unlock()
					return progressed, rerr
				}
				buf = AppendFrame(buf, msg)
			}
			if s-1 > sent && sent < f.maxSent {
				f.resent += min(s-1, f.maxSent) - sent
			}
			f.mu.Unlock()
			if len(buf) == 0 {
				break
			}
			select {
			case <-dead:
				return progressed, deadErr()
			default:
			}
			conn.SetWriteDeadline(time.Now().Add(f.cfg.WriteTimeout))
			if _, err := conn.Write(buf); err != nil {
				return progressed, fmt.Errorf("syslog: write to %s: %w", f.cfg.Addr, err)
			}
			sent = s - 1
			f.mu.Lock()
			f.maxSent = max(f.maxSent, sent)
			f.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return progressed, ctx.Err()
		case <-dead:
			return progressed, deadErr()
		case <-f.wake:
		case now := <-tick.C:
			if sent > acked {
				if n, err := unackedBytes(raw); err == nil && n == 0 {
					acked = sent
					marks = append(marks, ackMark{sent, now})
				}
			}
			var upTo int64
			for len(marks) > 0 && now.Sub(marks[0].at) >= f.cfg.ConfirmAfter {
				upTo = marks[0].seq
				marks = marks[1:]
			}
			if upTo == 0 {
				continue
			}
			select {
			case <-dead:
				return progressed, deadErr()
			default:
			}
			f.mu.Lock()
			cerr := f.sp.confirm(upTo)
			if !f.closed {
				close(f.progress)
				f.progress = make(chan struct{})
			}
			f.mu.Unlock()
			if cerr != nil {
				return progressed, cerr
			}
			progressed = true
		}
	}
}
