// Command usersvc-bench holds the tools that measure usersvc, apart from the service binary: `seed`
// bulk-loads valid users and `bench` load-tests a running service (see docs/performance.md).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/usersvc/usersvc/internal/benchtool"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := benchtool.Run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "usersvc-bench:", err)
		os.Exit(1)
	}
}
