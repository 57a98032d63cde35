// Command gen writes amqp/methods_gen.go from specgen.Spec; run it through
// `go generate ./amqp`.
package main

import (
	"fmt"
	"os"

	"github.com/qmgr/qmgr/amqp/internal/specgen"
)

func main() {
	src, err := specgen.Generate(specgen.Spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	out := "methods_gen.go"
	if len(os.Args) > 1 {
		out = os.Args[1]
	}
	if err := os.WriteFile(out, src, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
