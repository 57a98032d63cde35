package cli

import (
	"flag"
	"io"

	"github.com/qmgr/qmgr/group"
)

// groupFlags are the flags every group command takes (group.Config's
// flags, with the command line's defaults).
type groupFlags struct {
	cfg group.Config
}

// register registers the group's flags on fs.
func (g *groupFlags) register(fs *flag.FlagSet) {
	g.cfg = group.Config{Name: "QSG1", AppSize: 256 << 20, AppElementSize: 256}
	g.cfg.RegisterFlags(fs)
}

// config is the configuration the flags gave, with the defaults applied.
func (g *groupFlags) config() (group.Config, error) {
	c := g.cfg.WithDefaults()
	return c, c.Validate()
}

// exitError carries an exit status.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// newFlags is a command's flag set: its help and errors go to out, and
// Parse returns its errors.
func newFlags(name string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return fs
}
