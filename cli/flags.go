package cli

import (
	"flag"
	"fmt"
	"io"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mq"
)

// groupFlags are the flags every group command takes (group.Config's
// flags, with the command line's defaults).
type groupFlags struct {
	cfg group.Config
	// smdsCacheMiB is --smds-cache: the process's read cache of bodies
	// read from shared message data sets (mq.SMDSCacheBytes), in MiB.
	smdsCacheMiB int64
}

// register registers the group's flags on fs.
func (g *groupFlags) register(fs *flag.FlagSet) {
	g.cfg = group.Config{Name: "QSG1", AppSize: 256 << 20, AppElementSize: 256}
	g.cfg.RegisterFlags(fs)
	fs.Int64Var(&g.smdsCacheMiB, "smds-cache", mq.SMDSCacheBytes>>20, "MiB of this process's read cache of message bodies read from shared message data sets (0: none)")
}

// config is the configuration the flags gave, with the defaults applied.
func (g *groupFlags) config() (group.Config, error) {
	if g.smdsCacheMiB < 0 || g.smdsCacheMiB > 1<<20 {
		return group.Config{}, fmt.Errorf("--smds-cache %d: 0 to 1048576 MiB", g.smdsCacheMiB)
	}
	mq.SMDSCacheBytes = g.smdsCacheMiB << 20
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
