// Drives a qmgr member's AMQP port with Node's amqplib (an unmodified
// RabbitMQ client): run by cli's TestAMQPOtherClients as
//   node amqplib_interop.js PORT
// It exits non-zero with a message when anything differs from what
// RabbitMQ would do, and prints OK at the end.
const amqp = require('amqplib');

function check(cond, what) {
  if (!cond) {
    console.log('FAIL: ' + what);
    process.exit(1);
  }
}

(async () => {
  const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:' + process.argv[2]);
  const ch = await conn.createConfirmChannel();

  // Fanout to a server-named queue, with confirms.
  const q = (await ch.assertQueue('', {exclusive: true})).queue;
  await ch.assertExchange('js.fan', 'fanout', {durable: false});
  await ch.bindQueue(q, 'js.fan', '');
  for (let i = 0; i < 20; i++) {
    ch.publish('js.fan', '', Buffer.from('m' + i), {persistent: true, headers: {n: i, s: 'x'}, messageId: 'id' + i});
  }
  await ch.waitForConfirms();

  // A consumer with prefetch 5 gets all twenty in order, with their headers.
  const c2 = await conn.createChannel();
  await c2.prefetch(5);
  const seen = [];
  await new Promise((resolve) => {
    c2.consume(q, (m) => {
      check(m.properties.headers.n === seen.length && m.properties.messageId === 'id' + seen.length,
        'delivery ' + seen.length + ': headers ' + JSON.stringify(m.properties.headers));
      seen.push(m.content.toString());
      c2.ack(m);
      if (seen.length === 20) resolve();
    });
  });
  await c2.close();

  // An 8 MiB message, whole.
  const big = Buffer.alloc(8 << 20);
  for (let i = 0; i < big.length; i += 4096) big[i] = i / 4096 % 251;
  ch.sendToQueue(q, big);
  await ch.waitForConfirms();
  const got = await ch.get(q, {noAck: true});
  check(got && got.content.equals(big), '8 MiB message: ' + (got ? got.content.length + ' bytes, differing' : 'none'));

  // A rejected message goes to the dead-letter exchange, with x-death.
  await ch.assertExchange('js.dlx', 'direct', {durable: false});
  const dlq = (await ch.assertQueue('', {exclusive: true})).queue;
  await ch.bindQueue(dlq, 'js.dlx', 'dead');
  const src = (await ch.assertQueue('', {exclusive: true, deadLetterExchange: 'js.dlx', deadLetterRoutingKey: 'dead'})).queue;
  ch.sendToQueue(src, Buffer.from('doomed'));
  await ch.waitForConfirms();
  const doomed = await ch.get(src);
  check(doomed, 'no message on the dead-lettering queue');
  ch.reject(doomed, false);
  let dead = false;
  for (let i = 0; i < 100 && !dead; i++) {
    dead = await ch.get(dlq, {noAck: true});
    if (!dead) await new Promise((r) => setTimeout(r, 50));
  }
  check(dead && dead.content.toString() === 'doomed', 'dead-lettered message: ' + (dead ? dead.content : 'none'));
  const death = dead.properties.headers['x-death'];
  check(Array.isArray(death) && death[0].reason === 'rejected' && death[0].queue === src,
    'x-death ' + JSON.stringify(death));

  // For qmgr get --props, on the Go side.
  await ch.assertQueue('interop.out.js', {durable: true});
  ch.sendToQueue('interop.out.js', Buffer.from('from-amqplib'),
    {contentType: 'text/plain', correlationId: 'js-1', headers: {lang: 'node'}, persistent: true});
  await ch.waitForConfirms();
  await conn.close();
  console.log('OK');
})().catch((e) => {
  console.log('FAIL: ' + e.stack);
  process.exit(1);
});
