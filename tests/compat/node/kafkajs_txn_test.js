#!/usr/bin/env node
// kafkajs 2.2.4 transactions driver for tests/compat/test_transactions_kafkajs.py.
//
//   node kafkajs_txn_test.js <bootstrap> <topic> basic
//   node kafkajs_txn_test.js <bootstrap> <topic> ctp <groupId>
//
// basic: creates <topic> (3 partitions); a transactional producer
//   (producer.transaction()) sends 5 records per partition in three transactions:
//   committed (txn0), aborted (txn1), committed (txn2). Then two consumers of their
//   own groups read the topic from the beginning: readUncommitted=false (the default)
//   and readUncommitted=true, each until it has the records it should see (+1.5 s for
//   anything extra). Reports what each consumed.
// ctp: creates <topic>-in and <topic>-out (3 partitions), writes 20 records per
//   partition to -in with a plain producer, then consumes -in in group <groupId>
//   (readUncommitted=false, autoCommit=false, eachBatch); every batch is one
//   transaction: the transformed records (value "out:" + value, same key and
//   partition) to -out plus transaction.sendOffsets({consumerGroupId, topics}) with
//   the batch's next offset, then commit. Stops once every input record was handled
//   (+1.5 s), reports admin.fetchOffsets of the group.
// Prints one line `RESULT <json>` (exit 0), or exits 1 with a message; the Python side
// makes the exact assertions (and reads the output with confluent-kafka).
'use strict'

const assert = require('assert')
const { makeKafka, sleep, waitFor } = require('./common')

const [bootstrap, topic, scenario, groupArg] = process.argv.slice(2)
if (!scenario) {
  console.error('usage: kafkajs_txn_test.js <bootstrap> <topic> basic|ctp [groupId]')
  process.exit(2)
}

const kafka = makeKafka('gregor-compat-kafkajs-txn', bootstrap)

function txnProducer (transactionalId) {
  return kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1, transactionTimeout: 30000 })
}

async function createTopics (admin, names, numPartitions) {
  const created = await admin.createTopics({
    topics: names.map(topic => ({ topic, numPartitions, replicationFactor: 1 })),
    waitForLeaders: true,
    timeout: 30000
  })
  assert.strictEqual(created, true, 'createTopics')
}

// Consumes `t` from the beginning in its own group until `want` records arrived, then
// 1.5 s more (anything extra would arrive now); returns [{partition, offset, value}].
async function consumeAll (t, groupId, readUncommitted, want) {
  const c = kafka.consumer({ groupId, readUncommitted, sessionTimeout: 6000, heartbeatInterval: 500, maxWaitTimeInMs: 100 })
  const got = []
  await c.connect()
  try {
    await c.subscribe({ topics: [t], fromBeginning: true })
    await c.run({
      eachMessage: async ({ partition, message }) => {
        got.push({ partition, offset: Number(message.offset), value: message.value.toString() })
      }
    })
    await waitFor(() => got.length >= want, `${want} records (readUncommitted=${readUncommitted})`, 45000)
    await sleep(1500)
  } finally {
    await c.disconnect()
  }
  return got
}

async function basic (admin) {
  const partitions = 3
  const per = 5
  await createTopics(admin, [topic], partitions)
  const producer = txnProducer(`txid-${topic}`)
  await producer.connect()
  const outcomes = []
  try {
    for (const [i, commit] of [[0, true], [1, false], [2, true]]) {
      const txn = await producer.transaction()
      const messages = []
      for (let n = 0; n < per; n++) {
        for (let p = 0; p < partitions; p++) messages.push({ partition: p, key: `k${n}`, value: `txn${i}-${p}-${n}` })
      }
      const sent = await txn.send({ topic, messages, acks: -1 })
      if (commit) await txn.commit(); else await txn.abort()
      outcomes.push({ txn: i, commit, sent: sent.map(s => ({ partition: s.partition, errorCode: s.errorCode })) })
    }
  } finally {
    await producer.disconnect()
  }
  const committed = await consumeAll(topic, `g-rc-${topic}`, false, 2 * per * partitions)
  const uncommitted = await consumeAll(topic, `g-ru-${topic}`, true, 3 * per * partitions)
  const ends = (await admin.fetchTopicOffsets(topic)).map(o => [o.partition, Number(o.high)]).sort((a, b) => a[0] - b[0])
  return { outcomes, committed, uncommitted, ends }
}

async function ctp (admin) {
  const partitions = 3
  const per = 20
  const groupId = groupArg
  const inTopic = `${topic}-in`
  const outTopic = `${topic}-out`
  await createTopics(admin, [inTopic, outTopic], partitions)
  const plain = kafka.producer()
  await plain.connect()
  const messages = []
  for (let n = 0; n < per; n++) {
    for (let p = 0; p < partitions; p++) messages.push({ partition: p, key: `k-in-${p}-${n}`, value: `in-${p}-${n}` })
  }
  await plain.send({ topic: inTopic, messages, acks: -1 })
  await plain.disconnect()

  const producer = txnProducer(`txid-${topic}`)
  await producer.connect()
  const consumer = kafka.consumer({ groupId, readUncommitted: false, sessionTimeout: 6000, heartbeatInterval: 500, maxWaitTimeInMs: 100 })
  await consumer.connect()
  let handled = 0
  let transactions = 0
  const failures = []
  try {
    await consumer.subscribe({ topics: [inTopic], fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
        if (!batch.messages.length) return
        const txn = await producer.transaction()
        try {
          await txn.send({
            topic: outTopic,
            acks: -1,
            messages: batch.messages.map(m => ({ partition: batch.partition, key: m.key, value: 'out:' + m.value.toString() }))
          })
          const next = String(Number(batch.messages[batch.messages.length - 1].offset) + 1)
          await txn.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: inTopic, partitions: [{ partition: batch.partition, offset: next }] }] })
          await txn.commit()
        } catch (e) {
          failures.push(String(e))
          await txn.abort().catch(() => {})
          throw e
        }
        for (const m of batch.messages) resolveOffset(m.offset)
        handled += batch.messages.length
        transactions++
        await heartbeat()
      }
    })
    await waitFor(() => handled >= messages.length, `all ${messages.length} input records handled (failures: ${failures})`, 60000)
    await sleep(1500)
  } finally {
    await consumer.disconnect()
    await producer.disconnect()
  }
  const fetched = (await admin.fetchOffsets({ groupId, topics: [inTopic] }))[0].partitions
    .map(p => [p.partition, Number(p.offset)]).sort((a, b) => a[0] - b[0])
  return { handled, transactions, failures, fetched }
}

async function main () {
  const admin = kafka.admin()
  await admin.connect()
  try {
    if (scenario === 'basic') return await basic(admin)
    if (scenario === 'ctp') return await ctp(admin)
    throw new Error(`unknown scenario ${scenario}`)
  } finally {
    await admin.disconnect()
  }
}

main().then(result => {
  process.stdout.write('RESULT ' + JSON.stringify(result) + '\n')
  process.exit(0)
}, err => {
  console.error('kafkajs_txn_test.js FAILED:', err && err.stack ? err.stack : err)
  if (err && err.errors) console.error('nested errors:', err.errors)
  process.exit(1)
})
