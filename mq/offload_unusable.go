package mq

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/qmgr/qmgr/smds"
)

// UnusableDataSet is a data set whose file a structure recovery found
// unusable (RebuildDataSets): not a data set of the structure at all, or
// cut below its header. Its file was moved aside and an empty data set
// put in its place; the messages whose bodies it held are lost (moved
// off their queues by their first gets).
type UnusableDataSet struct {
	Num     uint16
	Path    string // the data set's file
	MovedTo string // where the unusable file is now
	Lost    int    // the structure's references to it: messages whose bodies are lost
	Err     error  // why it is unusable
}

// unusableFile reports whether err, from rebuilding data set o, says its
// file is not a usable data set of the structure: its header (read when
// the file is opened) has no data set's magic, is corrupt, names another
// structure or member, or is cut short. Not an I/O error, nor a layout
// version this binary does not read (a member of another version does),
// nor anything about the space map: those fail the recovery.
func unusableFile(err error, o smds.Options) bool {
	var se *smds.Error
	if !errors.As(err, &se) || se.Op != "open" || se.Path != dataSetPath(o) || se.Offset != 0 {
		return false
	}
	return errors.Is(err, smds.ErrBadMagic) || errors.Is(err, smds.ErrCorrupt) ||
		errors.Is(err, smds.ErrTruncated) || errors.Is(err, smds.ErrDamaged)
}

// dataSetPath is the file of data set o (as smds names it).
func dataSetPath(o smds.Options) string {
	return filepath.Join(o.Dir, o.Structure+"."+o.Member+".smds")
}

// replaceUnusable moves the unusable file of data set o aside (kept for
// whoever looks into it, under a name no data set has), creates an empty
// data set in its place and rebuilds its map from refs, the structure's
// references to it: none can be kept (no run header of theirs is in the
// new file), so each run's head block is left free at the gen after its
// reference's (smds.Rebuild), and neither reading nor freeing a lost
// reference ever touches a run allocated after the recovery. It fills in
// u's Path and MovedTo. The caller holds the data set's lock.
func replaceUnusable(o smds.Options, refs []smds.Ref, u *UnusableDataSet) (*smds.DataSet, smds.RebuildResult, error) {
	u.Path = dataSetPath(o)
	u.MovedTo = fmt.Sprintf("%s.unusable-%d", u.Path, time.Now().UnixNano())
	if err := os.Rename(u.Path, u.MovedTo); err != nil {
		return nil, smds.RebuildResult{}, fmt.Errorf("move the unusable data set %s aside (%v): %w", u.Path, u.Err, err)
	}
	c := o
	c.BlockSize, c.ExtentBlocks, c.MaxExtents = smdsGeometry.blockSize, smdsGeometry.extentBlocks, smdsGeometry.maxExtents
	d, err := smds.Create(c)
	if err != nil {
		return nil, smds.RebuildResult{}, fmt.Errorf("replace the unusable data set %s (moved to %s): %w", u.Path, u.MovedTo, err)
	}
	d.Close()
	return smds.Rebuild(o, refs)
}
