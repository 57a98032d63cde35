// Command unit-audit runs one replica of the example audit unit, as a
// member starts it (STARTCMD): configured from the environment, stopped by
// SIGTERM or SIGINT.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/qmgr/qmgr/unit/example/audit"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := audit.RunFromEnv(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "unit-audit:", err)
		os.Exit(1)
	}
}
