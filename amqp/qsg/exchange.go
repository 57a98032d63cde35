package qsg

import (
	"bytes"
	"errors"
	"strings"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/defs"
)

// declareExchange runs exchange.declare.
func (s *session) declareExchange(m *amqp.ExchangeDeclare) error {
	if kind, ok := defs.BuiltinExchanges[m.Exchange]; ok {
		if m.Passive || m.Type == kind {
			return nil
		}
		return amqp.ChannelException(amqp.ReplyAccessRefused, m, "exchange name '%s' contains reserved prefix 'amq.*'", m.Exchange)
	}
	if !m.Passive && strings.HasPrefix(m.Exchange, "amq.") {
		return amqp.ChannelException(amqp.ReplyAccessRefused, m, "exchange name '%s' contains reserved prefix 'amq.*'", m.Exchange)
	}
	if !defs.ValidExchangeName(m.Exchange) {
		return amqp.ChannelException(amqp.ReplyPreconditionFailed, m, "exchange name '%s' is not valid (1 to 255 of A-Z a-z 0-9 - _ . :)", m.Exchange)
	}
	if !m.Passive && !s.permits(accessConfigure, m.Exchange) {
		return s.refused(m, accessConfigure, "exchange", m.Exchange)
	}
	want := defs.Exchange{Name: m.Exchange, Kind: m.Type, Durable: m.Durable, AutoDelete: m.AutoDelete, Internal: m.Internal}
	if len(m.Arguments) > 0 {
		var err error
		if want.Args, err = amqp.AppendTable(nil, m.Arguments); err != nil {
			return amqp.ChannelException(amqp.ReplyPreconditionFailed, m, "%v", err)
		}
	}
	b := s.b
	b.adminMu.Lock()
	defer b.adminMu.Unlock()
	created := false
	err := b.parts.Defs.Update(func(tx *defs.Tx) error {
		old, err := tx.Exchange(m.Exchange)
		switch {
		case err == nil && m.Passive:
			return nil
		case err == nil:
			return exchangeEquivalent(m, old, want)
		case !errors.Is(err, defs.ErrNotFound):
			return err
		case m.Passive:
			return amqp.ChannelException(amqp.ReplyNotFound, m, "no exchange '%s' in vhost '/'", m.Exchange)
		}
		if err := want.Validate(); err != nil {
			return amqp.ConnectionException(amqp.ReplyCommandInvalid, m, "invalid exchange type '%s'", m.Type)
		}
		created = true
		_, err = tx.Save(defs.TypeExchange, want.Name, want, defs.Create)
		return err
	})
	if err == nil && created {
		err = b.defsChanged()
	}
	return asException(m, err)
}

// exchangeEquivalent checks a declare of an existing exchange.
func exchangeEquivalent(m *amqp.ExchangeDeclare, have, want defs.Exchange) error {
	differ := func(what string) error {
		return amqp.ChannelException(amqp.ReplyPreconditionFailed, m, "inequivalent arg '%s' for exchange '%s' in vhost '/'", what, m.Exchange)
	}
	switch {
	case have.Kind != want.Kind:
		return differ("type")
	case have.Durable != want.Durable:
		return differ("durable")
	case have.AutoDelete != want.AutoDelete:
		return differ("auto_delete")
	case have.Internal != want.Internal:
		return differ("internal")
	case !bytes.Equal(have.Args, want.Args):
		return differ("arguments")
	}
	return nil
}

// deleteExchange runs exchange.delete: the exchange and every binding
// from or to it.
func (s *session) deleteExchange(m *amqp.ExchangeDelete) error {
	if _, ok := defs.BuiltinExchanges[m.Exchange]; ok {
		return amqp.ChannelException(amqp.ReplyAccessRefused, m, "exchange '%s' in vhost '/' is built in", m.Exchange)
	}
	if !s.permits(accessConfigure, m.Exchange) {
		return s.refused(m, accessConfigure, "exchange", m.Exchange)
	}
	b := s.b
	b.adminMu.Lock()
	defer b.adminMu.Unlock()
	err := b.parts.Defs.Update(func(tx *defs.Tx) error {
		if _, err := tx.Exchange(m.Exchange); err != nil {
			if errors.Is(err, defs.ErrNotFound) {
				return errGone
			}
			return err
		}
		from, err := tx.Bindings(m.Exchange)
		if err != nil {
			return err
		}
		if m.IfUnused && len(from) > 0 {
			return amqp.ChannelException(amqp.ReplyPreconditionFailed, m, "exchange '%s' in vhost '/' in use", m.Exchange)
		}
		if err := tx.DeleteBindingsOf(defs.DestExchange, m.Exchange); err != nil {
			return err
		}
		return tx.Delete(defs.TypeExchange, m.Exchange)
	})
	if errors.Is(err, errGone) {
		return nil // RabbitMQ answers delete-ok for an exchange that is not there
	}
	if err == nil {
		err = b.defsChanged()
	}
	return asException(m, err)
}

// bind adds (or, with unbind, removes) binding bd, after checking that its
// source exchange and destination exist and that the user may write to
// the destination and read from the source (RabbitMQ's rule).
func (s *session) bind(m amqp.Method, bd defs.Binding, args amqp.Table, unbind bool) error {
	if !s.permits(accessWrite, bd.Dest) {
		return s.refused(m, accessWrite, strings.ToLower(bd.DestKind), bd.Dest)
	}
	if !s.permits(accessRead, bd.Source) {
		return s.refused(m, accessRead, "exchange", bd.Source)
	}
	if bd.Source == "" {
		return amqp.ChannelException(amqp.ReplyAccessRefused, m, "operation not permitted on the default exchange")
	}
	if len(args) > 0 {
		var err error
		if bd.Args, err = amqp.AppendTable(nil, args); err != nil {
			return amqp.ChannelException(amqp.ReplyPreconditionFailed, m, "%v", err)
		}
	}
	if err := bd.Validate(); err != nil {
		return amqp.ChannelException(amqp.ReplyPreconditionFailed, m, "%v", err)
	}
	if bd.DestKind == defs.DestQueue {
		if err := s.checkOwned(m, bd.Dest); err != nil {
			return err
		}
	}
	b := s.b
	b.adminMu.Lock()
	defer b.adminMu.Unlock()
	changed := false
	err := b.parts.Defs.Update(func(tx *defs.Tx) error {
		if err := bindEnds(m, tx, bd); err != nil {
			return err
		}
		_, err := tx.Binding(bd.Name())
		switch {
		case unbind && err == nil:
			changed = true
			return tx.Delete(defs.TypeBinding, bd.Name())
		case unbind && errors.Is(err, defs.ErrNotFound), !unbind && err == nil:
			return nil
		case !errors.Is(err, defs.ErrNotFound):
			return err
		}
		changed = true
		_, err = tx.Save(defs.TypeBinding, bd.Name(), bd, defs.Create)
		return err
	})
	if err == nil && changed {
		err = b.defsChanged()
	}
	return asException(m, err)
}

// bindEnds checks that a binding's source and destination exist.
func bindEnds(m amqp.Method, tx *defs.Tx, bd defs.Binding) error {
	exists := func(kind, name string) error {
		var err error
		if kind == defs.DestQueue {
			_, err = tx.Queue(name)
		} else if _, builtin := defs.BuiltinExchanges[name]; !builtin {
			_, err = tx.Exchange(name)
		}
		if errors.Is(err, defs.ErrNotFound) {
			return amqp.ChannelException(amqp.ReplyNotFound, m, "no %s '%s' in vhost '/'", strings.ToLower(kind), name)
		}
		return err
	}
	if err := exists(defs.DestExchange, bd.Source); err != nil {
		return err
	}
	return exists(bd.DestKind, bd.Dest)
}
