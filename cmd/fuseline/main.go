// Command fuseline is the end-of-line provisioning and hardware-in-the-loop
// test station for Espressif ESP32-family boards. The command tree lives in
// package cli so the station, the specs and this binary share one code path.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"fuseline/cmd/fuseline/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
