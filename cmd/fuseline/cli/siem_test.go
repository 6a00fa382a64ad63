package cli

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testPKI is a throwaway CA with a server certificate for 127.0.0.1 and a
// station client certificate, written as PEM files.
type testPKI struct {
	caFile, certFile, keyFile string
	server                    tls.Certificate
	pool                      *x509.CertPool
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-siem-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: ips}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srvDER, srvKey := leaf(2, "siem", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	cliDER, cliKey := leaf(3, "station-01", x509.ExtKeyUsageClientAuth, nil)
	cliKeyDER, _ := x509.MarshalECPrivateKey(cliKey)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return testPKI{
		caFile:   write("ca.pem", "CERTIFICATE", caDER),
		certFile: write("station.pem", "CERTIFICATE", cliDER),
		keyFile:  write("station.key", "EC PRIVATE KEY", cliKeyDER),
		server:   tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey},
		pool:     pool,
	}
}

// TestRunForwardsToSIEM: with --siem, every audit record of the run and its
// checkpoint reach a mutual-TLS syslog listener as RFC 5425 frames, in
// order. (reports/syslog has the test against a real rsyslogd.)
func TestRunForwardsToSIEM(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pki.server},
		ClientCAs: pki.pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	msgs := make(chan string, 1000)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go readFrames(c, msgs)
		}
	}()

	ws := demoWorkspace(t)
	data := filepath.Join(ws.Dir, "data")
	code, out, stderr := runCLI(t, "", "run", "--recipe", ws.RecipePath, "--data", data, "--yes", "--operator", "alice",
		"--siem", ln.Addr().String(), "--siem-ca", pki.caFile, "--siem-cert", pki.certFile, "--siem-key", pki.keyFile)
	if code != ExitOK {
		t.Fatalf("run: exit %d\n%s\n%s", code, out, stderr)
	}
	log, err := os.ReadFile(filepath.Join(data, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	records := strings.Count(string(log), "\n")
	var got []string
	deadline := time.After(30 * time.Second)
	for len(got) < records+1 { // every record and at least one checkpoint
		select {
		case m := <-msgs:
			got = append(got, m)
		case <-deadline:
			t.Fatalf("SIEM received %d messages, want %d records + checkpoint", len(got), records)
		}
	}
	var seqs []int
	checkpoints := 0
	for _, m := range got {
		if strings.Contains(m, "checkpoint") {
			checkpoints++
		}
		if i := strings.Index(m, `"seq":`); i >= 0 {
			n, _ := strconv.Atoi(strings.TrimRight(strings.SplitN(m[i+6:], ",", 2)[0], "}"))
			seqs = append(seqs, n)
		}
	}
	if checkpoints == 0 {
		t.Error("no checkpoint forwarded")
	}
	if len(seqs) != records {
		t.Fatalf("found %d record sequence numbers in %d messages, want %d", len(seqs), len(got), records)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("records out of order: %v", seqs)
		}
	}
	if !strings.Contains(strings.Join(got, "\n"), "run.start") || !strings.Contains(strings.Join(got, "\n"), "efuse.burn") {
		t.Errorf("forwarded messages lack run.start/efuse.burn records:\n%s", strings.Join(got[:min(3, len(got))], "\n"))
	}

	// Without the client certificate the SIEM refuses the station; the flag
	// pair is checked before anything runs.
	code, _, stderr = runCLI(t, "", "run", "--recipe", ws.RecipePath, "--data", data, "--yes",
		"--siem", ln.Addr().String(), "--siem-ca", pki.caFile, "--siem-cert", pki.certFile)
	if code != ExitUsage || !strings.Contains(stderr, "--siem-cert and --siem-key go together") {
		t.Errorf("half a key pair: exit %d %s", code, stderr)
	}
}

// readFrames reads RFC 5425 octet-counted frames ("LEN SP MSG").
func readFrames(c net.Conn, out chan<- string) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		lenText, err := r.ReadString(' ')
		if err != nil {
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(lenText))
		if err != nil || n <= 0 || n > 1<<20 {
			out <- fmt.Sprintf("bad frame length %q", lenText)
			return
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return
		}
		out <- string(b)
	}
}
