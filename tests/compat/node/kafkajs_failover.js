#!/usr/bin/env node
// kafkajs 2.2.4 driver for tests/compat/test_cluster_clients.py: produce through a
// leader failure.
//
//   node kafkajs_failover.js <bootstrap,...> <topic> <partitions> <rate/s> <max-seconds>
//
// An idempotent producer (idempotent: true, maxInFlightRequests: 1, so acks=-1)
// sends the values "0", "1", "2", ... (partition = seq % partitions) in small
// sends, one partition per send, one send at a time, at about <rate> records/s,
// and reports each send's outcome per record.
//
// One partition per send because of kafkajs 2.2.4's sendMessages: when a send
// spans several leaders and one fails, the retry skips every broker that had
// already answered (`responsePerBroker`), so a partition whose leadership moved
// to such a broker is never re-sent, and its sequence numbers were rolled back
// although the failed leader may have written (and replicated) the batch. The
// next batch then reuses those sequence numbers: OUT_OF_ORDER_SEQUENCE_NUMBER
// forever, or, with the same record count, an exact duplicate the broker
// answers with the earlier batch's offsets (as Kafka does), so kafkajs
// acknowledges records that were never written. The same happens against
// Apache Kafka; kafkajs issue #598 is of this family.
//
// The test steers it through stdin, as the Java driver:
//
//   stdin   MARK   answer `MARK <seq>`: every record from <seq> on is sent after this line was read
//           STOP   stop sending, disconnect, exit
//   stdout  ACK <seq> <partition> <offset>   acknowledged (offset = the partition's baseOffset
//                                            in the answer + the record's index in that partition)
//           FAIL <seq> <error>               the send failed after kafkajs's own retries
//           PRODUCED sent=<n>
//           RESULT ok
//
// A failed send is reported and production goes on with the next values: the
// test checks acknowledged records only. kafkajs logs (WARN and up) go to stderr.
'use strict'

const readline = require('readline')
const { Kafka, logLevel } = require('kafkajs')

const [bootstrap, topic, partitionsArg, rateArg, maxSecondsArg] = process.argv.slice(2)
const partitions = Number(partitionsArg)
const rate = Number(rateArg)
const maxMs = Number(maxSecondsArg) * 1000
const PER_SEND = 10

const stderrLogger = () => ({ namespace, label, log }) => {
  const { message, ...extra } = log
  const when = new Date().toISOString()
  process.stderr.write(`${when} [kafkajs ${label}] ${namespace}: ${message} ${JSON.stringify(extra)}\n`)
}

const kafka = new Kafka({
  clientId: 'gregor-cluster-kafkajs',
  brokers: bootstrap.split(','),
  connectionTimeout: 3000,
  requestTimeout: 10000,
  // A failover takes a few seconds (the dead leader is fenced after the broker
  // session timeout, then the controller elects another ISR member): retry for
  // about 20 s before giving up on a send.
  retry: { retries: 12, initialRetryTime: 100, maxRetryTime: 2000 },
  logLevel: logLevel.WARN,
  logCreator: stderrLogger
})

let nextSeq = 0
let stop = false
readline.createInterface({ input: process.stdin }).on('line', line => {
  // Single-threaded: a MARK is answered between two sends, so no earlier send takes <seq>.
  if (line === 'MARK') process.stdout.write(`MARK ${nextSeq}\n`)
  else if (line === 'STOP') stop = true
}).on('close', () => { stop = true })

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function main () {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const t0 = Date.now()
  try {
    while (!stop && Date.now() - t0 < maxMs) {
      const seqs = []
      for (let i = 0; i < PER_SEND; i++) seqs.push(nextSeq++)
      const started = Date.now()
      for (let p = 0; p < partitions; p++) {
        const mine = seqs.filter(s => s % partitions === p)
        if (mine.length === 0) continue
        const messages = mine.map(s => ({ value: String(s), partition: p }))
        try {
          const res = await producer.send({ topic, messages, acks: -1, timeout: 10000 })
          const r = res.find(r => r.partition === p)
          if (!r) throw new Error(`no result for partition ${p} in ${JSON.stringify(res)}`)
          const base = BigInt(r.baseOffset)
          process.stdout.write(mine.map((s, i) => `ACK ${s} ${p} ${base + BigInt(i)}`).join('\n') + '\n')
        } catch (e) {
          const why = `${e.name}: ${e.message}`.replace(/\n/g, ' ')
          process.stdout.write(mine.map(s => `FAIL ${s} ${why}`).join('\n') + '\n')
        }
      }
      const wait = (PER_SEND * 1000) / rate - (Date.now() - started)
      if (wait > 0) await sleep(wait)
    }
  } finally {
    await producer.disconnect()
  }
  process.stdout.write(`PRODUCED sent=${nextSeq}\nRESULT ok\n`)
}

main().then(() => process.exit(0), err => {
  console.error('kafkajs_failover.js FAILED:', err && err.stack ? err.stack : err)
  process.exit(1)
})
