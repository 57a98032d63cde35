package mqsc

import (
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"

	"github.com/qmgr/qmgr/amqp/access"
	"github.com/qmgr/qmgr/defs"
)

// userObj is an AMQP user for its attribute table: its definition, and
// whether the command gives a password (hashed by setUser before its
// transaction, never kept).
type userObj struct {
	defs.AMQPUser
	newPassword bool
}

var amqpuserTable = table[userObj]{
	typ: "AMQPUSER", header: "Display AMQP user details.", defaultAll: true, notFound: notFoundAs("AMQPUSER"),
	attrs: []attr[userObj]{
		{name: "AMQPUSER", ident: true, show: func(u *userObj) any { return u.Name }},
		// PASSWORD is shown as SET or NOTSET; the value is hashed and
		// never stored, shown nor logged (Redact).
		{name: "PASSWORD", secret: true, show: func(u *userObj) any { return setNotSet(u.Hash != "" || u.newPassword) },
			set: func(u *userObj, a Attr) error { u.newPassword = true; return nil }},
		{name: "TAGS", show: func(u *userObj) any { return strings.Join(u.Tags, ",") }, set: func(u *userObj, a Attr) error {
			u.Tags = strings.FieldsFunc(a.Raw, func(r rune) bool { return r == ',' || r == ' ' })
			for _, t := range u.Tags {
				if !defs.ValidTag(t) {
					return fmt.Errorf("%w: TAGS(%s): %q is not a tag (A-Z a-z 0-9 _ -)", ErrValue, a.Raw, t)
				}
			}
			return nil
		}},
		{name: "LOOPBACK", show: func(u *userObj) any { return yesNo(u.LoopbackOnly) }, set: func(u *userObj, a Attr) (err error) {
			u.LoopbackOnly, err = parseYesNo(a)
			return err
		}},
		{name: "VHOSTS", show: func(u *userObj) any { return strings.Join(sortedKeys(u.Perms), ",") }},
		{name: "CRDATE", show: func(u *userObj) any { return mqDay(u.Created) }},
		{name: "CRTIME", show: func(u *userObj) any { return mqTime(u.Created) }},
		{name: "ALTDATE", show: func(u *userObj) any { return mqDay(u.Altered) }},
		{name: "ALTTIME", show: func(u *userObj) any { return mqTime(u.Altered) }},
	},
}

func setNotSet(b bool) string {
	if b {
		return "SET"
	}
	return "NOTSET"
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range maps.Keys(m) {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// passwordOf is the last PASSWORD the command gives, as written.
func passwordOf(c Command) (pw string, given bool) {
	for _, a := range c.Attrs {
		if a.Key == "PASSWORD" {
			pw, given = a.Raw, true
		}
	}
	return pw, given
}

// setUser is SET AMQPUSER: it creates the user or changes what the
// command gives. A new user has no permissions (SET AMQPPERM gives them)
// and, without PASSWORD, no password: it cannot log in. PASSWORD(”)
// removes the password.
func setUser(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	if !defs.ValidAMQPUserName(c.Name) {
		return nil, fmt.Errorf("%w: AMQPUSER(%s) is not a valid user name", ErrValue, c.Name)
	}
	var hash string
	if pw, ok := passwordOf(c); ok && pw != "" {
		// Hashed before the transaction: argon2 is slow on purpose, and
		// the definitions' write lock is the group's.
		var err error
		if hash, err = access.HashPassword(pw); err != nil {
			return nil, err
		}
	}
	var created bool
	err := env.Repo().Update(func(tx *defs.Tx) error {
		old, err := tx.AMQPUser(c.Name)
		created = errors.Is(err, defs.ErrNotFound)
		if err != nil && !created {
			return err
		}
		u := userObj{AMQPUser: old}
		if created {
			u.AMQPUser = defs.AMQPUser{Name: c.Name}
		}
		if err := amqpuserTable.apply(&u, c.Attrs); err != nil {
			return err
		}
		if u.newPassword {
			u.Hash = hash
		}
		if err := u.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrValue, err)
		}
		_, err = tx.Save(defs.TypeAMQPUser, u.Name, u.AMQPUser, defs.Replace)
		return err
	})
	if err != nil {
		return nil, err
	}
	msg := "AMQP user changed."
	if created {
		msg = "AMQP user created."
	}
	return []Result{{Message: msg}}, env.DefsChanged()
}

func displayUsers(env Env, c Command) ([]Result, error) {
	return display(c, &amqpuserTable, func() ([]userObj, error) {
		var us []defs.AMQPUser
		err := env.Repo().View(func(tx *defs.Tx) error { var err error; us, err = tx.AMQPUsers(c.Name); return err })
		out := make([]userObj, len(us))
		for i, u := range us {
			out[i] = userObj{AMQPUser: u}
		}
		return out, err
	})
}

// permObj is one user's permissions in one virtual host.
type permObj struct {
	user  string
	vhost string
	defs.Perm
}

var amqppermTable = table[permObj]{
	typ: "AMQPPERM", header: "Display AMQP permission details.", defaultAll: true, notFound: notFoundAs("AMQPPERM"),
	attrs: []attr[permObj]{
		{name: "AMQPPERM", ident: true, show: func(p *permObj) any { return p.user }},
		{name: "VHOST", ident: true, show: func(p *permObj) any { return p.vhost }, set: func(p *permObj, a Attr) error {
			p.vhost = a.Raw
			return nil
		}},
		{name: "CONFIGURE", show: func(p *permObj) any { return p.Configure }, set: func(p *permObj, a Attr) error {
			p.Configure = a.Raw
			return checkPattern(a)
		}},
		{name: "WRITE", show: func(p *permObj) any { return p.Write }, set: func(p *permObj, a Attr) error {
			p.Write = a.Raw
			return checkPattern(a)
		}},
		{name: "READ", show: func(p *permObj) any { return p.Read }, set: func(p *permObj, a Attr) error {
			p.Read = a.Raw
			return checkPattern(a)
		}},
	},
}

func checkPattern(a Attr) error {
	if err := defs.ValidatePattern(a.Raw); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrValue, a.Key, err)
	}
	return nil
}

// vhostOf is the command's VHOST, "/" when it gives none.
func vhostOf(c Command) string {
	v := defs.DefaultVHost
	for _, a := range c.Attrs {
		if a.Key == "VHOST" {
			v = a.Raw
		}
	}
	return v
}

// setPerm is SET AMQPPERM: the user's patterns in VHOST (default "/");
// a pattern the command does not give keeps its value, or is empty
// (nothing) in a virtual host the user had no permissions in.
func setPerm(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	vhost := vhostOf(c)
	if vhost != defs.DefaultVHost {
		return nil, fmt.Errorf("%w: VHOST(%s): only %s exists", ErrValue, vhost, defs.DefaultVHost)
	}
	err := env.Repo().Update(func(tx *defs.Tx) error {
		u, err := tx.AMQPUser(c.Name)
		if errors.Is(err, defs.ErrNotFound) {
			return fmt.Errorf("%w: AMQPUSER(%s)", ErrNotFound, c.Name)
		} else if err != nil {
			return err
		}
		p := permObj{user: u.Name, vhost: vhost, Perm: u.Perms[vhost]}
		if err := amqppermTable.apply(&p, c.Attrs); err != nil {
			return err
		}
		u.Perms = maps.Clone(u.Perms)
		if u.Perms == nil {
			u.Perms = map[string]defs.Perm{}
		}
		u.Perms[vhost] = p.Perm
		if err := u.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrValue, err)
		}
		_, err = tx.Save(defs.TypeAMQPUser, u.Name, u, defs.Alter)
		return err
	})
	if err != nil {
		return nil, err
	}
	return []Result{{Message: "AMQP permissions set."}}, env.DefsChanged()
}

// deletePerm is DELETE AMQPPERM: the user's permissions in VHOST go (it
// may no longer open it).
func deletePerm(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	for _, a := range c.Attrs {
		if a.Key != "VHOST" {
			return nil, fmt.Errorf("%w: %q is not an attribute of DELETE AMQPPERM", ErrSyntax, a.Key+"("+a.Value+")")
		}
	}
	vhost := vhostOf(c)
	err := env.Repo().Update(func(tx *defs.Tx) error {
		u, err := tx.AMQPUser(c.Name)
		if errors.Is(err, defs.ErrNotFound) {
			return fmt.Errorf("%w: AMQPUSER(%s)", ErrNotFound, c.Name)
		} else if err != nil {
			return err
		}
		if _, ok := u.Perms[vhost]; !ok {
			return fmt.Errorf("%w: AMQPPERM(%s) VHOST(%s)", ErrNotFound, c.Name, vhost)
		}
		u.Perms = maps.Clone(u.Perms)
		delete(u.Perms, vhost)
		_, err = tx.Save(defs.TypeAMQPUser, u.Name, u, defs.Alter)
		return err
	})
	if err != nil {
		return nil, err
	}
	return []Result{{Message: "AMQP permissions deleted."}}, env.DefsChanged()
}

func displayPerms(env Env, c Command) ([]Result, error) {
	return display(c, &amqppermTable, func() ([]permObj, error) {
		var us []defs.AMQPUser
		err := env.Repo().View(func(tx *defs.Tx) error { var err error; us, err = tx.AMQPUsers(c.Name); return err })
		var out []permObj
		for _, u := range us {
			for _, v := range sortedKeys(u.Perms) {
				out = append(out, permObj{user: u.Name, vhost: v, Perm: u.Perms[v]})
			}
		}
		return out, err
	})
}
