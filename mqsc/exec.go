package mqsc

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
)

// Sentinel errors of command execution (besides ErrSyntax).
var (
	ErrNotFound = errors.New("mqsc: object not found")
	ErrExists   = errors.New("mqsc: object already exists")
	ErrInUse    = errors.New("mqsc: object in use")
	ErrNotEmpty = errors.New("mqsc: queue not empty")
	ErrValue    = errors.New("mqsc: invalid value")
)

// Env is what commands act on: the member running them.
type Env interface {
	Repo() *defs.Repo
	Group() *group.Group
	// OwnerIn is the member's owner in application structure c (whose file
	// is created when missing). c comes from the caller's transaction.
	OwnerIn(c defs.CFStruct) (*lockfree.Owner, *lockfree.Structure, error)
	// CreateStructure creates the file of a newly defined structure.
	CreateStructure(c defs.CFStruct) error
	// DefsChanged tells every process the definitions changed.
	DefsChanged() error
	// QMgrName is the member's name.
	QMgrName() string
	// LongUOWsBackedOut is how many long-running units of work the member
	// backed out since it started (DISPLAY QMGR LONGUOWS).
	LongUOWsBackedOut() int64
	// CommandsRefused is how many command connections the member refused
	// since it started: peers of another user outside the group
	// (DISPLAY QMGR CMDREFUSED).
	CommandsRefused() int64
	// LogClear makes the clearing of a queue durable in the member's
	// recovery log (its persistent messages must not come back when the
	// structure is recovered).
	LogClear(structure, queue string) error
	// Backup takes a fuzzy backup of an application structure's persistent
	// messages and describes it.
	Backup(structure string) (string, error)
	// Recover rebuilds a failed application structure from its newest
	// backup and the logs, and says what it did.
	Recover(structure string) (string, error)
}

// KV is one attribute of a result: the value is an int64 or a string.
type KV struct {
	Key   string
	Value any
}

// Result is what a command produced: a message, or one displayed object.
type Result struct {
	Message string // for commands that change things
	Header  string // for displays: the MQSC header line
	Attrs   []KV
}

// Execute runs one command. A command that fails changes nothing.
func Execute(env Env, c Command) ([]Result, error) {
	switch c.Verb + " " + c.Type {
	case "DEFINE QLOCAL", "ALTER QLOCAL":
		return defineQueue(env, c)
	case "DELETE QLOCAL":
		return deleteQueue(env, c)
	case "CLEAR QLOCAL":
		return clearQueue(env, c)
	case "DISPLAY QLOCAL":
		return displayQueues(env, c)
	case "DISPLAY QSTATUS":
		return displayQStatus(env, c)
	case "DEFINE CFSTRUCT", "ALTER CFSTRUCT":
		return defineStruct(env, c)
	case "DISPLAY CFSTRUCT":
		return displayStructs(env, c)
	case "DISPLAY SVSTATUS":
		return displaySvStatus(env, c)
	case "DISPLAY CFSTATUS":
		return displayCFStatus(env, c)
	case "BACKUP CFSTRUCT":
		return structAction(env, c, env.Backup)
	case "RECOVER CFSTRUCT":
		return structAction(env, c, env.Recover)
	case "DISPLAY GROUP":
		return displayGroup(env, c)
	case "DISPLAY CONN":
		return displayConns(env, c)
	case "ALTER QMGR", "DISPLAY QMGR":
		return qmgr(env, c)
	case "DEFINE QREMOTE", "ALTER QREMOTE":
		return defineQRemote(env, c)
	case "DELETE QREMOTE":
		return deleteObject(env, c, defs.TypeQRemote, "AMQ8007I: Queue deleted.")
	case "DISPLAY QREMOTE":
		return displayQRemotes(env, c)
	case "DEFINE CHANNEL", "ALTER CHANNEL":
		return defineChannel(env, c)
	case "DELETE CHANNEL":
		return deleteChannel(env, c)
	case "DISPLAY CHANNEL":
		return displayChannels(env, c)
	case "START CHANNEL":
		return startChannel(env, c)
	case "STOP CHANNEL":
		return stopChannel(env, c)
	case "DISPLAY CHSTATUS":
		return displayChStatus(env, c)
	case "RESET CHANNEL":
		return resetChannel(env, c)
	case "RESOLVE CHANNEL":
		return resolveChannel(env, c)
	case "START CHINIT", "STOP CHINIT":
		return chinit(env, c)
	case "SET AMQPUSER":
		return setUser(env, c)
	case "DELETE AMQPUSER":
		return deleteObject(env, c, defs.TypeAMQPUser, "AMQP user deleted.")
	case "DISPLAY AMQPUSER":
		return displayUsers(env, c)
	case "SET AMQPPERM":
		return setPerm(env, c)
	case "DELETE AMQPPERM":
		return deletePerm(env, c)
	case "DISPLAY AMQPPERM":
		return displayPerms(env, c)
	case "DEFINE EXCHANGE":
		return defineExchange(env, c)
	case "DELETE EXCHANGE":
		return deleteExchange(env, c)
	case "DISPLAY EXCHANGE":
		return displayExchanges(env, c)
	case "DISPLAY BINDING":
		return displayBindings(env, c)
	case "DEFINE SERVICE", "ALTER SERVICE":
		return defineService(env, c)
	case "DELETE SERVICE":
		return deleteService(env, c)
	case "DISPLAY SERVICE":
		return displayServices(env, c)
	case "START SERVICE", "STOP SERVICE":
		return startStopService(env, c)
	case "DISPLAY REQUESTS":
		return displayRequests(env, c)
	case "CANCEL REQUEST":
		return cancelRequest(env, c)
	}
	return nil, fmt.Errorf("%w: %s %s is not supported", ErrSyntax, c.Verb, c.Type)
}

// Run parses and executes every command in input, stopping at the first
// error.
func Run(env Env, input string) ([]Result, error) {
	cmds, err := Parse(input)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, c := range cmds {
		rs, err := Execute(env, c)
		out = append(out, rs...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func checkFlags(c Command, allowed ...string) error {
	for _, f := range c.Flags {
		ok := false
		for _, a := range allowed {
			ok = ok || f == a
		}
		if !ok {
			return fmt.Errorf("%w: %q is not a keyword of %s %s", ErrSyntax, f, c.Verb, c.Type)
		}
	}
	return nil
}

func parseInt(a Attr, lo, hi int64) (int64, error) {
	v, err := strconv.ParseInt(a.Value, 10, 64)
	if err != nil || a.Quoted {
		return 0, fmt.Errorf("%w: %s(%s) is not a number", ErrValue, a.Key, a.Value)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%w: %s(%d) not in %d..%d", ErrValue, a.Key, v, lo, hi)
	}
	return v, nil
}

// parseIntAs is parseInt for a field of another integer type.
func parseIntAs[N ~int](a Attr, lo, hi int64) (N, error) {
	n, err := parseInt(a, lo, hi)
	return N(n), err
}

func parseYesNo(a Attr) (bool, error) {
	switch a.Value {
	case "YES":
		return true, nil
	case "NO":
		return false, nil
	}
	return false, fmt.Errorf("%w: %s(%s) is not YES or NO", ErrValue, a.Key, a.Value)
}

func parseName(a Attr, valid func(string) bool) (string, error) {
	if a.Value == "" {
		return "", nil
	}
	if !valid(a.Value) {
		return "", fmt.Errorf("%w: %s(%s) is not a valid name", ErrValue, a.Key, a.Value)
	}
	return a.Value, nil
}

func parseEnum(a Attr, values ...string) (string, error) {
	for _, v := range values {
		if a.Value == v {
			return v, nil
		}
	}
	return "", fmt.Errorf("%w: %s(%s) is not one of %s", ErrValue, a.Key, a.Value, strings.Join(values, ", "))
}

// checkDefine applies MQSC's rule for DEFINE and ALTER of an object of
// type typ that exists or not: ALTER needs it, DEFINE of an existing one
// needs REPLACE.
func checkDefine(c Command, typ string, exists bool) error {
	switch {
	case c.Verb == "ALTER" && !exists:
		return fmt.Errorf("%w: %s(%s)", ErrNotFound, typ, c.Name)
	case c.Verb != "ALTER" && exists && !c.Has("REPLACE"):
		return fmt.Errorf("%w: %s(%s) (add REPLACE to redefine it)", ErrExists, typ, c.Name)
	}
	return nil
}

// mqDay and mqTime are a time as MQ displays it: 2006-01-02 and 15.04.05.
func mqDay(t time.Time) string  { return t.Format("2006-01-02") }
func mqTime(t time.Time) string { return t.Format("15.04.05") }

func yesNo(b bool) string {
	if b {
		return "YES"
	}
	return "NO"
}
