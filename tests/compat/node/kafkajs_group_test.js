#!/usr/bin/env node
// kafkajs 2.2.4 consumer-group driver for tests/compat/test_groups_kafkajs.py.
//
//   node kafkajs_group_test.js <bootstrap> <topic> <groupId> <partitions> <perPartition>
//
// Creates the topic, starts two consumers of one group (eachMessage, autoCommit after
// each batch), waits until the group's assignment is split between them (GROUP_JOIN
// events), only then produces partitions*perPartition records, consumes until all were
// seen (plus 1.5 s for stragglers), describes the group while both run, disconnects them,
// then admin describeGroups / listGroups / fetchOffsets / setOffsets / deleteGroups.
// Prints one line `RESULT <json>` (exit 0), or exits 1 with a message; the Python side
// makes the exact assertions.
'use strict'

const assert = require('assert')
const { AssignerProtocol } = require('kafkajs')
const { makeKafka, sleep, waitFor } = require('./common')

const [bootstrap, topic, groupId, partitionsArg, perPartitionArg] = process.argv.slice(2)
if (!perPartitionArg) {
  console.error('usage: kafkajs_group_test.js <bootstrap> <topic> <groupId> <partitions> <perPartition>')
  process.exit(2)
}
const partitions = Number(partitionsArg)
const perPartition = Number(perPartitionArg)

const kafka = makeKafka('gregor-compat-kafkajs-group', bootstrap)

function describeForJson (group) {
  return {
    groupId: group.groupId,
    state: group.state,
    protocolType: group.protocolType,
    protocol: group.protocol,
    errorCode: group.errorCode,
    members: group.members.map(m => {
      const a = m.memberAssignment && m.memberAssignment.length ? AssignerProtocol.MemberAssignment.decode(m.memberAssignment) : null
      const s = m.memberMetadata && m.memberMetadata.length ? AssignerProtocol.MemberMetadata.decode(m.memberMetadata) : null
      return {
        memberId: m.memberId,
        clientId: m.clientId,
        clientHost: m.clientHost,
        subscription: s ? s.topics : null,
        assignment: a ? a.assignment : null
      }
    }).sort((x, y) => (x.memberId < y.memberId ? -1 : 1))
  }
}

async function main () {
  const admin = kafka.admin()
  await admin.connect()
  const consumers = []
  try {
    const created = await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }], waitForLeaders: true, timeout: 30000 })
    assert.strictEqual(created, true, 'createTopics')

    const consumed = [] // {member, partition, offset, value}
    const joins = [[], []] // GROUP_JOIN payloads per member
    for (let i = 0; i < 2; i++) {
      const c = kafka.consumer({
        groupId,
        sessionTimeout: 6000,
        rebalanceTimeout: 20000,
        heartbeatInterval: 500,
        maxWaitTimeInMs: 100,
        retry: { retries: 10, initialRetryTime: 200 }
      })
      c.on(c.events.GROUP_JOIN, e => joins[i].push({
        memberId: e.payload.memberId,
        isLeader: e.payload.isLeader,
        groupProtocol: e.payload.groupProtocol,
        assignment: (e.payload.memberAssignment[topic] || []).slice().sort((x, y) => x - y)
      }))
      c.on(c.events.CRASH, e => process.stderr.write(`consumer ${i} CRASH: ${e.payload.error}\n`))
      await c.connect()
      await c.subscribe({ topics: [topic], fromBeginning: true })
      consumers.push(c)
    }
    const latest = i => (joins[i].length ? joins[i][joins[i].length - 1].assignment : null)

    await consumers[0].run({
      eachMessage: async ({ partition, message }) => {
        consumed.push({ member: 0, partition, offset: Number(message.offset), value: message.value.toString() })
      }
    })
    await waitFor(() => joins[0].length > 0, 'the first consumer to join', 30000)
    await consumers[1].run({
      eachMessage: async ({ partition, message }) => {
        consumed.push({ member: 1, partition, offset: Number(message.offset), value: message.value.toString() })
      }
    })
    await waitFor(() => {
      const a = latest(0); const b = latest(1)
      if (!a || !b || !a.length || !b.length) return false
      const union = new Set([...a, ...b])
      return a.length + b.length === partitions && union.size === partitions
    }, 'the group to split the partitions between both consumers', 45000)
    const assignments = [latest(0), latest(1)]

    const producer = kafka.producer()
    await producer.connect()
    const messages = []
    for (let i = 0; i < partitions * perPartition; i++) {
      messages.push({ partition: i % partitions, key: `key-${i}`, value: `value-${i}` })
    }
    const sent = await producer.send({ topic, messages, acks: -1, timeout: 30000 })
    await producer.disconnect()

    await waitFor(() => consumed.length >= messages.length, 'every record consumed', 45000)
    await sleep(1500) // duplicates, if any, would arrive now

    // While both run: the group as DescribeGroups reports it, and the committed offsets
    // (autoCommit commits after every batch).
    const whileRunning = describeForJson((await admin.describeGroups([groupId])).groups[0])
    let offsetsWhileRunning
    await waitFor(async () => {
      const o = await admin.fetchOffsets({ groupId, topics: [topic] })
      offsetsWhileRunning = o[0].partitions.map(p => [p.partition, Number(p.offset)]).sort((x, y) => x[0] - y[0])
      return offsetsWhileRunning.every(([, off]) => off === perPartition)
    }, 'all offsets committed', 15000).catch(() => {})

    for (const c of consumers) await c.disconnect()
    consumers.length = 0

    const afterDisconnect = describeForJson((await admin.describeGroups([groupId])).groups[0])
    const listed = (await admin.listGroups()).groups
    const fetched = (await admin.fetchOffsets({ groupId, topics: [topic] }))
      .map(t => ({ topic: t.topic, partitions: t.partitions.map(p => [p.partition, Number(p.offset), p.metadata]).sort((x, y) => x[0] - y[0]) }))

    // Admin OffsetCommit on the empty group, read back.
    await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '3' }] })
    const afterSet = (await admin.fetchOffsets({ groupId, topics: [topic] }))[0].partitions
      .map(p => [p.partition, Number(p.offset)]).sort((x, y) => x[0] - y[0])

    const deleted = await admin.deleteGroups([groupId])
    const listedAfterDelete = (await admin.listGroups()).groups

    return {
      joins,
      assignments,
      sent: sent.map(s => ({ partition: s.partition, errorCode: s.errorCode, baseOffset: s.baseOffset })).sort((x, y) => x.partition - y.partition),
      consumed,
      whileRunning,
      offsetsWhileRunning,
      afterDisconnect,
      listed,
      fetched,
      afterSet,
      deleted: deleted.map(d => ({ groupId: d.groupId, errorCode: d.errorCode })),
      listedAfterDelete
    }
  } finally {
    for (const c of consumers) await c.disconnect().catch(() => {})
    await admin.disconnect()
  }
}

main().then(result => {
  process.stdout.write('RESULT ' + JSON.stringify(result) + '\n')
  process.exit(0)
}, err => {
  console.error('kafkajs_group_test.js FAILED:', err && err.stack ? err.stack : err)
  if (err && err.errors) console.error('nested errors:', err.errors)
  process.exit(1)
})
