package qsg

import (
	"net"

	"github.com/qmgr/qmgr/amqp"
)

// Login checks a user's password (amqp.Broker).
func (b *Broker) Login(user, password string, remote net.Addr) error {
	return amqp.ConnectionException(amqp.ReplyAccessRefused, nil, "not implemented yet")
}

// Session starts a connection's work (amqp.Broker).
func (b *Broker) Session(c *amqp.Conn, user, vhost string) (amqp.Session, error) {
	return nil, amqp.ConnectionException(amqp.ReplyNotAllowed, nil, "not implemented yet")
}
