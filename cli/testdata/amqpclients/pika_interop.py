"""Drives a qmgr member's AMQP port with Python's pika (an unmodified
RabbitMQ client): run by cli's TestAMQPOtherClients as
    python3 pika_interop.py PORT
It exits non-zero with a message when anything differs from what RabbitMQ
would do, and prints OK at the end."""
import datetime
import decimal
import sys

import pika


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)


port = int(sys.argv[1])
params = pika.ConnectionParameters(host="127.0.0.1", port=port,
                                   credentials=pika.PlainCredentials("guest", "guest"), heartbeat=10)
conn = pika.BlockingConnection(params)
ch = conn.channel()

# A message an mq application put (qmgr put) comes out of basic.get.
m, p, body = ch.basic_get("interop.in", auto_ack=True)
check(m is not None and body == b"from-qmgr", "basic.get of qmgr put's message: %r" % (body,))

# Every field type pika writes survives the round trip.
ch.confirm_delivery()
q = ch.queue_declare(queue="", exclusive=True).method.queue
check(q.startswith("amq.gen-"), "server-named queue %s" % q)
ch.exchange_declare("py.topic", exchange_type="topic", durable=True)
ch.queue_bind(q, "py.topic", routing_key="a.*.c")
headers = {"s": "str", "i": 42, "neg": -7, "b": True, "l": [1, "two", False], "d": {"x": 1},
           "big": 2 ** 40, "dec": decimal.Decimal("1.25"), "ts": datetime.datetime(2024, 1, 2, 3, 4, 5),
           "bytes": b"\x00\x01", "none": None}
props = pika.BasicProperties(content_type="text/plain", content_encoding="utf-8", delivery_mode=2, priority=3,
                             correlation_id="c1", reply_to="r", expiration="60000", message_id="m1",
                             timestamp=1700000000, type="t", app_id="py", headers=headers)
for i in range(10):
    ch.basic_publish("py.topic", "a.b.c", b"hello %d" % i, props, mandatory=True)
try:
    ch.basic_publish("py.topic", "no.route", b"x", mandatory=True)
    check(False, "an unroutable mandatory publish was not returned")
except pika.exceptions.UnroutableError as e:
    check(len(e.messages) == 1, "returned %d messages" % len(e.messages))

m, p, body = ch.basic_get(q)
check(body == b"hello 0" and not m.redelivered, "first get %r redelivered=%s" % (body, m.redelivered))
for k, v in headers.items():
    check(p.headers.get(k) == v, "header %s: %r, want %r" % (k, p.headers.get(k), v))
for k in ("content_type", "content_encoding", "delivery_mode", "priority", "correlation_id", "reply_to",
          "expiration", "message_id", "timestamp", "type", "app_id"):
    check(getattr(p, k) == getattr(props, k), "property %s: %r, want %r" % (k, getattr(p, k), getattr(props, k)))

# Nack with requeue: back in its place, redelivered; then consume all ten.
ch.basic_nack(m.delivery_tag, requeue=True)
got = []
for m, p, body in ch.consume(q, inactivity_timeout=10):
    check(m is not None, "consume timed out after %d messages" % len(got))
    got.append((body, m.redelivered))
    ch.basic_ack(m.delivery_tag)
    if len(got) == 10:
        break
ch.cancel()
check(got[0] == (b"hello 0", True), "first consumed %r" % (got[0],))
check([b for b, _ in got] == [b"hello %d" % i for i in range(10)], "order %r" % ([b for b, _ in got],))

# A transaction: the rolled back publish is not put, the committed one is.
ch2 = conn.channel()
ch2.tx_select()
ch2.basic_publish("", q, b"tx1")
ch2.tx_rollback()
ch2.basic_publish("", q, b"tx2")
ch2.tx_commit()
m, p, body = ch2.basic_get(q, auto_ack=True)
check(body == b"tx2", "after rollback and commit: %r" % (body,))
m, p, body = ch2.basic_get(q, auto_ack=True)
check(m is None, "a second message after the transaction: %r" % (body,))

# A passive declare of a missing queue closes the channel with 404.
try:
    ch2.queue_declare(queue="nosuch", passive=True)
    check(False, "passive declare of a missing queue succeeded")
except pika.exceptions.ChannelClosedByBroker as e:
    check(e.reply_code == 404, "passive declare: %d %s" % (e.reply_code, e.reply_text))

# For qmgr get --props, on the Go side.
ch.queue_declare("interop.out.py", durable=True)
ch.basic_publish("", "interop.out.py", b"from-pika",
                 pika.BasicProperties(content_type="text/plain", correlation_id="py-1",
                                      headers={"lang": "python"}, delivery_mode=2))
conn.close()
print("OK")
