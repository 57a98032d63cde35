package qsg

import (
	"net"

	"github.com/qmgr/qmgr/amqp/access"
	"github.com/qmgr/qmgr/defs"
)

// Access kinds, as RabbitMQ's permissions name them.
const (
	accessConfigure = access.Configure
	accessWrite     = access.Write
	accessRead      = access.Read
)

// authenticator checks logins against the users in the shared
// definitions (package amqp/access).
type authenticator struct {
	repo *defs.Repo
}

func newAuthenticator(repo *defs.Repo) authenticator { return authenticator{repo: repo} }

// login checks user's password from remote.
func (a authenticator) login(user, password string, remote net.Addr) error {
	_, err := access.Authenticate(a.repo, user, password, remote)
	return err
}

// user loads a user's definition as of now: its permissions hold for the
// connection.
func (a authenticator) user(name string) (u defs.AMQPUser, err error) {
	err = a.repo.View(func(tx *defs.Tx) error { u, err = tx.AMQPUser(name); return err })
	return u, err
}
