package group

import (
	"flag"
	"fmt"
	"strconv"
)

// RegisterFlags registers the flags that set c on fs: --group, --data,
// --cf-dir, --app-size (MiB) and --app-element-size. The values c holds
// when it is called are the flags' defaults (zero: Validate's defaults
// apply). Args turns a Config back into these flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Name, "group", c.Name, "queue-sharing group")
	fs.StringVar(&c.DataDir, "data", c.DataDir, "the group's data directory (default: $XDG_STATE_HOME/qmgr/<group>)")
	fs.StringVar(&c.CFDir, "cf-dir", c.CFDir, "the group's CF directory (default: /dev/shm/qmgr-<group>)")
	fs.Var((*mibFlag)(&c.AppSize), "app-size", "MiB of the application structure APPL1 when this process creates it")
	fs.IntVar(&c.AppElementSize, "app-element-size", c.AppElementSize, "bytes per data element of the application structures this process creates (larger suits large messages)")
}

// maxAppMiB is the largest --app-size.
const maxAppMiB = 1 << 20

// mibFlag is a size in bytes given on the command line in MiB.
type mibFlag uint64

func (m *mibFlag) String() string {
	if m == nil {
		return "0"
	}
	return strconv.FormatUint(uint64(*m)>>20, 10)
}

func (m *mibFlag) Set(s string) error {
	n, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		return err
	}
	if n > maxAppMiB {
		return fmt.Errorf("%d MiB: at most %d", n, maxAppMiB)
	}
	*m = mibFlag(n << 20)
	return nil
}

// Args appends to a the flags RegisterFlags reads back into c: every
// field that is set (a zero field is left to its default). AppSize is
// passed in whole MiB, as --app-size takes it, rounded up: a child never
// gets a smaller structure than configured (rounded down, a size under
// 1 MiB would become 0, which means the 256 MiB default).
func (c Config) Args(a ...string) []string {
	if c.Name != "" {
		a = append(a, "--group", c.Name)
	}
	if c.DataDir != "" {
		a = append(a, "--data", c.DataDir)
	}
	if c.CFDir != "" {
		a = append(a, "--cf-dir", c.CFDir)
	}
	if c.AppSize != 0 {
		a = append(a, "--app-size", strconv.FormatUint((c.AppSize+1<<20-1)>>20, 10))
	}
	if c.AppElementSize != 0 {
		a = append(a, "--app-element-size", strconv.Itoa(c.AppElementSize))
	}
	return a
}
