package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"fuseline/reports/audit"
	"fuseline/reports/syslog"
)

// siemOptions say where the station ships its audit records: a SIEM's
// RFC 5425 listener, reached over mutual TLS.
type siemOptions struct {
	addr, ca, cert, key, serverName string
	flushWait                       time.Duration
}

func addSIEMFlags(cmd *cobra.Command, o *siemOptions) {
	f := cmd.Flags()
	f.StringVar(&o.addr, "siem", "", "forward audit records to this SIEM (HOST:PORT, syslog over TLS, RFC 5425); records wait in a disk spool while it is down")
	f.StringVar(&o.ca, "siem-ca", "", "CA certificate(s) (PEM) that sign the SIEM's certificate")
	f.StringVar(&o.cert, "siem-cert", "", "the station's client certificate (PEM) for mutual TLS")
	f.StringVar(&o.key, "siem-key", "", "the station's client key (PEM)")
	f.StringVar(&o.serverName, "siem-server-name", "", "name the SIEM's certificate must carry (default: the host of --siem)")
	f.DurationVar(&o.flushWait, "siem-flush", 5*time.Second, "how long to wait at the end for the SIEM to confirm the run's records (what is left stays spooled for the next run)")
}

// tlsConfig builds the client side of the mutual-TLS connection.
func (o siemOptions) tlsConfig() (*tls.Config, error) {
	if o.ca == "" {
		return nil, usageErr("--siem needs --siem-ca (the SIEM's CA)")
	}
	pem, err := readInput("--siem-ca", o.ca, maxKeyFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, usageErr("--siem-ca %s: no PEM certificate in it", o.ca)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, ServerName: o.serverName}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(o.addr)
		if err != nil {
			return nil, usageErr("--siem %q: want HOST:PORT", o.addr)
		}
		cfg.ServerName = host
	}
	switch {
	case o.cert != "" && o.key != "":
		c, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			// The error names the files, not the key material.
			return nil, usageErr("--siem-cert/--siem-key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{c}
	case o.cert != "" || o.key != "":
		return nil, usageErr("--siem-cert and --siem-key go together")
	}
	return cfg, nil
}

// openSIEM starts forwarding when --siem is given: it returns the sink for
// audit.Config.Forward and a stop function that waits (bounded) for the
// SIEM to confirm what was handed over, then closes the forwarder. Call stop
// after the audit log is closed, so the final checkpoint goes out too.
func openSIEM(ctx context.Context, o siemOptions, data string) (audit.Sink, func(), error) {
	if o.addr == "" {
		return nil, func() {}, nil
	}
	tc, err := o.tlsConfig()
	if err != nil {
		return nil, nil, err
	}
	fwd, err := syslog.Open(ctx, syslog.Config{Addr: o.addr, TLS: tc, Spool: audit.NewLayout(data).Spool})
	if err != nil {
		return nil, nil, failErr(fmt.Errorf("siem: %w", err))
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); fwd.Run(runCtx) }()
	stop := func() {
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), o.flushWait)
		_ = fwd.Flush(fctx) // unconfirmed messages stay in the spool
		fcancel()
		cancel()
		<-done
		fwd.Close()
	}
	return fwd, stop, nil
}
