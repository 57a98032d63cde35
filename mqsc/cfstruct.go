package mqsc

import (
	"errors"
	"fmt"
	"strings"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
)

func defineStruct(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c, "REPLACE", "NOREPLACE"); err != nil {
		return nil, err
	}
	if !defs.ValidStructName(c.Name) {
		return nil, fmt.Errorf("%w: CFSTRUCT(%s): 1 to 12 letters and digits, starting with a letter", ErrValue, c.Name)
	}
	// The checks run twice: first to learn whether a structure file must be
	// created (which can take a while for a large one, so it is done outside
	// the repository's write transaction), then again in that transaction.
	var def defs.CFStruct
	created := false
	decide := func(tx *defs.Tx) error {
		old, err := tx.Struct(c.Name)
		exists := err == nil
		if err := checkDefine(c, "CFSTRUCT", exists); err != nil {
			return err
		}
		def = defs.CFStruct{Name: c.Name, SizeMB: 256}
		if exists {
			def = old
		}
		for _, a := range c.Attrs {
			switch a.Key {
			case "SIZE":
				n, err := parseInt(a, 16, 1<<20)
				if err != nil {
					return err
				}
				if exists && int(n) != old.SizeMB {
					return fmt.Errorf("%w: SIZE of CFSTRUCT(%s) is fixed at creation (%d MiB)", ErrValue, c.Name, old.SizeMB)
				}
				def.SizeMB = int(n)
			case "ELEMSIZE":
				n, err := parseInt(a, 64, 1<<20)
				if err != nil {
					return err
				}
				if exists && int(n) != old.ElemSize {
					return fmt.Errorf("%w: ELEMSIZE of CFSTRUCT(%s) is fixed at creation", ErrValue, c.Name)
				}
				def.ElemSize = int(n)
			case "DESCR":
				def.Descr = a.Value
			case "RECAUTO":
				switch a.Value {
				case "YES":
					def.NoRecAuto = false
				case "NO":
					def.NoRecAuto = true
				default:
					return fmt.Errorf("%w: RECAUTO(%s): YES or NO", ErrValue, a.Value)
				}
			default:
				return fmt.Errorf("%w: %q is not an attribute of CFSTRUCT", ErrSyntax, a.Key+"("+a.Value+")")
			}
		}
		if err := def.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrValue, err)
		}
		created = !exists
		return nil
	}
	if err := env.Repo().View(decide); err != nil {
		return nil, err
	}
	if created {
		if err := env.CreateStructure(def); err != nil {
			return nil, err
		}
	}
	err := env.Repo().Update(func(tx *defs.Tx) error {
		wasCreated := created
		if err := decide(tx); err != nil {
			return err
		}
		if created && !wasCreated {
			return fmt.Errorf("%w: CFSTRUCT(%s) was deleted concurrently; try again", ErrExists, c.Name)
		}
		_, err := tx.Save(defs.TypeCFStruct, def.Name, def, defs.Replace)
		return err
	})
	if err != nil {
		return nil, err
	}
	msg := "AMQ8110I: CF structure created."
	if !created {
		msg = "AMQ8111I: CF structure changed."
	}
	return []Result{{Message: msg}}, env.DefsChanged()
}

func displayStructs(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c, "ALL"); err != nil {
		return nil, err
	}
	var cs []defs.CFStruct
	if err := env.Repo().View(func(tx *defs.Tx) error { var err error; cs, err = tx.Structs(c.Name); return err }); err != nil {
		return nil, err
	}
	if len(cs) == 0 && !strings.HasSuffix(c.Name, "*") {
		return nil, fmt.Errorf("%w: CFSTRUCT(%s)", ErrNotFound, c.Name)
	}
	var out []Result
	for _, s := range cs {
		cd, ct := mqDate(s.Created)
		recauto := "YES"
		if s.NoRecAuto {
			recauto = "NO"
		}
		elem := int64(s.ElemSize)
		if elem == 0 { // the group's default when it was created
			elem = int64(env.Group().Config().AppElementSize)
			if st, err := env.Group().Structure(s.Name, false); err == nil {
				elem = int64(st.Params().ElementSize)
			}
		}
		out = append(out, Result{Header: "AMQ8112I: Display CF structure details.", Attrs: []KV{
			{"CFSTRUCT", s.Name}, {"SIZE", int64(s.SizeMB)}, {"ELEMSIZE", elem}, {"RECAUTO", recauto}, {"DESCR", s.Descr}, {"CRDATE", cd}, {"CRTIME", ct}}})
	}
	return out, nil
}

func displayCFStatus(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c, "ALL"); err != nil {
		return nil, err
	}
	typ := "SUMMARY"
	for _, a := range c.Attrs {
		if a.Key != "TYPE" || (a.Value != "SUMMARY" && a.Value != "BACKUP") {
			return nil, fmt.Errorf("%w: DISPLAY CFSTATUS takes TYPE(SUMMARY|BACKUP), not %s(%s)", ErrSyntax, a.Key, a.Value)
		}
		typ = a.Value
	}
	var cs []defs.CFStruct
	if err := env.Repo().View(func(tx *defs.Tx) error { var err error; cs, err = tx.Structs(c.Name); return err }); err != nil {
		return nil, err
	}
	if len(cs) == 0 && !strings.HasSuffix(c.Name, "*") {
		return nil, fmt.Errorf("%w: CFSTRUCT(%s)", ErrNotFound, c.Name)
	}
	if typ == "BACKUP" {
		return displayBackupStatus(env, cs)
	}
	var out []Result
	for _, def := range cs {
		r := Result{Header: "AMQ8113I: Display CF status details.", Attrs: []KV{{"CFSTRUCT", def.Name}}}
		_, s, err := env.OwnerIn(def)
		if errors.Is(err, group.ErrStructureBusy) {
			// Its file is missing and a member holds its recovery lock.
			r.Attrs = append(r.Attrs, KV{"STATUS", "RECOVERING"}, KV{"REASON", "being created and recovered by another member"})
			out = append(out, r)
			continue
		}
		if err != nil {
			r.Attrs = append(r.Attrs, KV{"STATUS", "FAILED"}, KV{"REASON", err.Error()})
			out = append(out, r)
			continue
		}
		if st := env.Group().StructureStatus(s); st.Status != "ACTIVE" {
			r.Attrs = append(r.Attrs, KV{"STATUS", st.Status})
			if st.Recoverer.Pid != 0 {
				r.Attrs = append(r.Attrs, KV{"RECOVERER", st.RecovererName}, KV{"RECPID", int64(st.Recoverer.Pid)})
			}
			r.Attrs = append(r.Attrs, KV{"REASON", st.Reason})
			out = append(out, r)
			continue
		}
		u := s.Usage()
		p := s.Params()
		r.Attrs = append(r.Attrs, KV{"STATUS", "ACTIVE"}, KV{"SIZE", int64(s.Mapping().Header().Size >> 20)},
			KV{"ENTSMAX", int64(p.Entries)}, KV{"ENTSUSED", int64(u.EntriesUsed)},
			KV{"ELEMMAX", int64(p.Elements)}, KV{"ELEMUSED", int64(u.ElementsUsed)},
			KV{"QUEUES", int64(u.Queues)}, KV{"CONNS", int64(u.Owners)})
		out = append(out, r)
	}
	return out, nil
}

// structAction runs BACKUP or RECOVER CFSTRUCT(name) through do.
func structAction(env Env, c Command, do func(structure string) (string, error)) ([]Result, error) {
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	if len(c.Attrs) > 0 {
		return nil, fmt.Errorf("%w: %s CFSTRUCT takes no attributes", ErrSyntax, c.Verb)
	}
	if err := env.Repo().View(func(tx *defs.Tx) error { _, err := tx.Struct(c.Name); return err }); err != nil {
		return nil, fmt.Errorf("%w: CFSTRUCT(%s)", ErrNotFound, c.Name)
	}
	msg, err := do(c.Name)
	if err != nil {
		return nil, err
	}
	return []Result{{Message: msg}}, nil
}

// displayBackupStatus shows each structure's newest backup and how long
// a recovery would take now: the bytes logged about the structure since
// the backup began, at the replay rate the last recovery measured (or the
// design's 200 MB/s).
func displayBackupStatus(env Env, cs []defs.CFStruct) ([]Result, error) {
	var out []Result
	for _, def := range cs {
		r := Result{Header: "AMQ8113I: Display CF status details.", Attrs: []KV{{"CFSTRUCT", def.Name}, {"TYPE", "BACKUP"}}}
		var logged uint64
		if _, s, err := env.OwnerIn(def); err == nil {
			logged = s.Logged()
		}
		var e defs.Estimate
		if err := env.Repo().View(func(tx *defs.Tx) error { var err error; e, err = tx.RecoveryEstimate(def.Name, logged); return err }); err != nil {
			return nil, err
		}
		if b := e.Newest; b != nil {
			date, tm := mqDate(b.Taken)
			r.Attrs = append(r.Attrs, KV{"BKUPDATE", date}, KV{"BKUPTIME", tm}, KV{"BKUPLRSN", int64(b.Start)},
				KV{"BKUPSIZE", b.Size}, KV{"BKUPMSGS", int64(b.Messages)})
		} else {
			r.Attrs = append(r.Attrs, KV{"BKUPDATE", ""}, KV{"BKUPTIME", ""}, KV{"BKUPLRSN", int64(0)},
				KV{"BKUPSIZE", int64(0)}, KV{"BKUPMSGS", int64(0)})
		}
		r.Attrs = append(r.Attrs, KV{"LOGBYTES", int64(e.Bytes)}, KV{"REPLAYMBS", int64(e.Rate.BytesPerSec / 1e6)},
			KV{"RECOVERMS", e.Time.Milliseconds()})
		out = append(out, r)
	}
	return out, nil
}
