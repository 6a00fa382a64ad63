package syslog_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	gosyslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/octetcounting"
	"github.com/leodido/go-syslog/v4/rfc5424"
)

// testPKI is a CA made in the test, a server certificate for
// localhost/127.0.0.1 and a client certificate for CN=station-01, written as
// PEM files (for rsyslog) and loaded (for Go).
type testPKI struct {
	Dir                   string
	CAFile                string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
	Pool                  *x509.CertPool
	Server, Client        tls.Certificate
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{Dir: dir, Pool: x509.NewCertPool()}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fuseline test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.Pool.AddCert(ca)
	p.CAFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

	leaf := func(name string, serial int64, eku x509.ExtKeyUsage, dns []string, ips []net.IP) (certFile, keyFile string, c tls.Certificate) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{eku},
			DNSNames: dns, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		certFile = writePEM(t, dir, name+".pem", "CERTIFICATE", der)
		keyFile = writePEM(t, dir, name+".key", "EC PRIVATE KEY", kder)
		c, err = tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	p.ServerCert, p.ServerKey, p.Server = leaf("localhost", 2, x509.ExtKeyUsageServerAuth, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	p.ClientCert, p.ClientKey, p.Client = leaf("station-01", 3, x509.ExtKeyUsageClientAuth, []string{"station-01"}, nil)
	return p
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// clientTLS is the station's side: trust the test CA, present the client
// certificate.
func (p *testPKI) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.Pool, Certificates: []tls.Certificate{p.Client}}
}

// siem is an in-process RFC 5425 receiver: mutual TLS 1.3, octet-counted
// frames parsed with go-syslog. It can be stopped (all connections cut) and
// started again on the same address.
type siem struct {
	t    testing.TB
	addr string
	cfg  *tls.Config

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	got   []*rfc5424.SyslogMessage
	errs  []error
	wg    sync.WaitGroup
}

func newSIEM(t testing.TB, p *testPKI, clientCAs *x509.CertPool) *siem {
	t.Helper()
	s := &siem{t: t, conns: map[net.Conn]bool{}, cfg: &tls.Config{
		Certificates: []tls.Certificate{p.Server}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: clientCAs, MinVersion: tls.VersionTLS13,
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.stop)
	return s
}

func (s *siem) serve(ln net.Listener) {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Go(func() { s.handle(tls.Server(c, s.cfg)) })
		}
	})
}

func (s *siem) handle(c *tls.Conn) {
	defer c.Close()
	p := octetcounting.NewParser(gosyslog.WithListener(func(r *gosyslog.Result) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.Error != nil {
			if !errors.Is(r.Error, net.ErrClosed) {
				s.errs = append(s.errs, r.Error)
			}
			return
		}
		s.got = append(s.got, r.Message.(*rfc5424.SyslogMessage))
	}))
	p.Parse(c)
}

// stop closes the listener and every connection, like a SIEM that dies.
func (s *siem) stop() {
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
	for c := range s.conns {
		c.Close()
		delete(s.conns, c)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *siem) start() {
	s.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may linger briefly
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.serve(ln)
}

func (s *siem) messages() []*rfc5424.SyslogMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*rfc5424.SyslogMessage(nil), s.got...)
}

// waitFor polls until cond holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sd(m *rfc5424.SyslogMessage, id, name string) string {
	if m.StructuredData == nil {
		return ""
	}
	return (*m.StructuredData)[id][name]
}

// seqs returns the meta sequenceIds in arrival order.
func seqs(t testing.TB, ms []*rfc5424.SyslogMessage) []int {
	t.Helper()
	out := make([]int, len(ms))
	for i, m := range ms {
		n, err := strconv.Atoi(sd(m, "meta", "sequenceId"))
		if err != nil {
			t.Fatalf("message %d has no meta sequenceId", i)
		}
		out[i] = n
	}
	return out
}

// checkInOrder checks at-least-once, in-order delivery of 1..n: the first
// arrival of each sequence number is in increasing order and none is
// missing; duplicates are allowed (re-sent after a lost connection).
func checkInOrder(t testing.TB, got []int, n int) (dups int) {
	t.Helper()
	seen := map[int]bool{}
	next := 1
	for _, s := range got {
		if seen[s] {
			dups++
			continue
		}
		if s != next {
			t.Fatalf("first arrival of %d while %d is still missing (arrival order %v)", s, next, got)
		}
		seen[s] = true
		next++
	}
	if next-1 != n {
		t.Fatalf("got %d distinct messages, want %d (arrival order %v)", next-1, n, got)
	}
	return dups
}
