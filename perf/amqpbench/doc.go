// Command amqpbench measures AMQP 0-9-1 brokers with the same client
// (github.com/rabbitmq/amqp091-go), on the same machine, in the same run:
// qmgr (a group of two members, QM1 and QM2, this program re-executed as
// qmgr) and, given -rabbitmq-url, a RabbitMQ (scripts/bench.sh amqp starts
// its own when rabbitmq-server is installed). It prints "name value unit"
// lines; RabbitMQ's figures end in .rabbitmq, and .ratio_vs_rabbitmq is
// qmgr's figure over RabbitMQ's. Lines starting with # say what is missing.
//
//	amqp.publish.consume.64B     msgs/s  one publisher, one consumer (connections
//	                                     of their own), transient 64-byte messages,
//	                                     prefetch 100, every message acknowledged on
//	                                     its own (PerfTest's default: no multiple
//	                                     ack); deliveries per second. The publisher
//	                                     publishes as fast as it can while it is at
//	                                     most 10,000 messages (-max-backlog, 0:
//	                                     unbounded as in PerfTest) ahead of the
//	                                     consumer, so the figure is a rate both
//	                                     sides sustain; .published is its rate
//	amqp.confirm.persistent.64B  msgs/s  8 publishers (-confirm-publishers) in
//	                                     confirm mode, each with at most 100
//	                                     (-confirm-window) unconfirmed, persistent
//	                                     messages to a durable queue, one consumer
//	                                     as above; confirms per second
//	                                     (.delivered: the consumer's rate)
//	amqp.fanout.64B              msgs/s  one publisher to a fanout exchange bound
//	                                     to 4 queues, a consumer on each as above;
//	                                     deliveries per second, all four together
//	*.cpu                        us/msg  the broker's processor time per message
//	                                     of the figure (qmgr: its members, their
//	                                     children and its broker processes;
//	                                     RabbitMQ: beam.smp and its children),
//	                                     which varies far less than a rate on a
//	                                     noisy machine
//	*.client.cpu                 us/msg  the benchmark client's (amqp091-go in this
//	                                     process) processor time per message: it
//	                                     shares the cores with the broker, so
//	                                     (cores × 10⁶) / (cpu + client.cpu) is
//	                                     the most any broker can reach here
//	*.client.bound               msgs/s  cores × 10⁶ / client.cpu: the rate of a
//	                                     broker that cost nothing, driven by this
//	                                     client on this machine; its
//	                                     .ratio_vs_rabbitmq is the highest ratio
//	                                     any broker could show here
//	amqp.idle1000.rss.*          MiB     resident set (VmRSS) of the process
//	                                     serving the connections, before and after
//	                                     1,000 idle connections (-idle-conns) each
//	                                     with one channel open; .anon.* its private
//	                                     part (RssAnon: VmRSS counts the pages of
//	                                     qmgr's CF structures it mapped), and
//	                                     .rss.per.conn in KiB
//	amqp.failover.ms.p50, .p99   ms      a consumer through QM1 holds 100 (-held)
//	                                     unacknowledged messages; QM1 is
//	                                     SIGKILLed; from the kill to the first
//	                                     redelivery through the generic port (a
//	                                     survivor), over 5 kills (-kills; nearest
//	                                     rank, so with fewer than 100 kills p99 is
//	                                     the slowest). Every held message must come
//	                                     back once, redelivered.
//
// Throughput runs last -warmup + -duration; each figure is the median of
// -rounds (5) runs per broker, the brokers alternating (which goes first
// changes every round), so that the machine's drifts touch both alike.
//
// qmgr serves AMQP in one of two modes (-qmgr-mode): listener, every
// member's own AMQP listener (qmgr start --amqp-port and
// --amqp-generic-port), the default when qmgr start has those flags; or
// inproc, a broker process of this program per member (qsg.New and
// amqp.Serve on a loopback port, connected through that member), which
// is what a listener runs. Failover needs the generic port: in inproc mode
// it is measured only with -failover-inproc (the member killed with its
// broker process, the client reconnecting to the survivor's broker), as
// amqp.failover.inproc.ms.
//
// -cpuprofile writes a CPU profile of the process serving QM1's AMQP
// during amqp.publish.consume.64B (inproc mode).
//
//	go run ./perf/amqpbench [-rabbitmq-url amqp://guest:guest@127.0.0.1:5672/] [-rounds 3] [-duration 3s]
package main
