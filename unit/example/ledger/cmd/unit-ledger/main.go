// Command unit-ledger runs one replica of the example ledger unit, as a
// member starts it (STARTCMD): configured from the environment, stopped by
// SIGTERM or SIGINT.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/qmgr/qmgr/unit/example/ledger"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := ledger.RunFromEnv(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "unit-ledger:", err)
		os.Exit(1)
	}
}
