#!/usr/bin/env node
// kafkajs 2.2.4 driver for tests/compat/test_kafkajs.py.
//
//   node kafkajs_test.js <bootstrap> <topic> admin
//   node kafkajs_test.js <bootstrap> <topic> produce <records.tsv> <codec> <acks> <idempotent 0|1>
//
// Asserts inside (exit code 1 with a message on failure) and prints one line
// `RESULT <json>` on success for the Python side to check. kafkajs has no
// consumer without a consumer group (and groups are not implemented yet), so
// what `produce` wrote is read back by the Python side with confluent-kafka.
//
// Codecs: gzip is built into kafkajs; snappy comes from kafkajs-snappy, lz4 from
// kafkajs-lz4, zstd from a small codec over @mongodb-js/zstd (the official
// @kafkajs/zstd does not build: its native cppzst dependency fails with node 20).
'use strict'

const fs = require('fs')
const assert = require('assert')
const { CompressionTypes, CompressionCodecs, ConfigResourceTypes } = require('kafkajs')
const { makeKafka, waitFor } = require('./common')
const SnappyCodec = require('kafkajs-snappy')
const LZ4Codec = require('kafkajs-lz4')
const zstd = require('@mongodb-js/zstd')

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  async compress (encoder) { return zstd.compress(encoder.buffer, 3) },
  async decompress (buffer) { return zstd.decompress(buffer) }
})

const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD
}

const [bootstrap, topic, scenario, ...rest] = process.argv.slice(2)
if (!bootstrap || !topic || !scenario) {
  console.error('usage: kafkajs_test.js <bootstrap> <topic> admin|produce ...')
  process.exit(2)
}

const kafka = makeKafka('gregor-compat-kafkajs', bootstrap)

function fromB64 (s) { return s === '-' ? null : Buffer.from(s, 'base64') }

function readTsv (path) {
  return fs.readFileSync(path, 'utf8').split('\n').filter(l => l.length > 0).map(line => {
    const f = line.split('\t')
    const headers = {}
    for (let i = 4; i < f.length; i += 2) {
      const k = fromB64(f[i]).toString('utf8')
      const v = fromB64(f[i + 1])
      assert(v !== null, 'kafkajs test data must not contain null header values')
      if (k in headers) headers[k] = [].concat(headers[k], v)
      else headers[k] = v
    }
    const rec = { partition: Number(f[0]), key: fromB64(f[2]), value: fromB64(f[3]), headers }
    if (f[1] !== '-') rec.timestamp = f[1]
    return rec
  })
}

async function admin () {
  const a = kafka.admin()
  await a.connect()
  try {
    const created = await a.createTopics({
      topics: [{ topic, numPartitions: 3, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
      waitForLeaders: true,
      timeout: 30000
    })
    assert.strictEqual(created, true, 'createTopics returned false (topic existed?)')

    const cluster = await a.describeCluster()
    assert.deepStrictEqual(cluster.brokers.map(b => [b.nodeId, b.host, b.port]),
      [[1, '127.0.0.1', Number(bootstrap.split(':')[1])]], 'describeCluster brokers')
    assert.strictEqual(cluster.controller, 1, 'controller id')

    let md = await a.fetchTopicMetadata({ topics: [topic] })
    assert.strictEqual(md.topics.length, 1)
    const parts = md.topics[0].partitions.slice().sort((x, y) => x.partitionId - y.partitionId)
    assert.deepStrictEqual(parts.map(p => [p.partitionId, p.leader, p.replicas, p.isr, p.partitionErrorCode]),
      [[0, 1, [1], [1], 0], [1, 1, [1], [1], 0], [2, 1, [1], [1], 0]], 'partition metadata')

    const cfg = await a.describeConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }], includeSynonyms: false })
    assert.strictEqual(cfg.resources.length, 1)
    assert.strictEqual(cfg.resources[0].errorCode, 0, 'describeConfigs error')
    const entries = Object.fromEntries(cfg.resources[0].configEntries.map(e => [e.configName, e]))
    assert.strictEqual(entries['retention.ms'].configValue, '3600000')
    assert.strictEqual(entries['cleanup.policy'].configValue, 'delete')
    assert.strictEqual(entries['segment.bytes'].configValue, '1073741824')

    // Creating it again: the broker answers TOPIC_ALREADY_EXISTS, which kafkajs turns into
    // `false` (documented: "resolves to false if the topic already exists").
    const again = await a.createTopics({ topics: [{ topic, numPartitions: 1 }], timeout: 30000 })
    assert.strictEqual(again, false, 'second createTopics of the same topic should resolve to false')

    await a.createPartitions({ topicPartitions: [{ topic, count: 5 }], timeout: 30000 })
    await waitFor(async () => {
      md = await a.fetchTopicMetadata({ topics: [topic] })
      return md.topics[0].partitions.length === 5
    }, '5 partitions after createPartitions')

    const offsets = await a.fetchTopicOffsets(topic)
    assert.deepStrictEqual(offsets.map(o => [o.partition, o.offset, o.low, o.high]).sort((x, y) => x[0] - y[0]),
      [0, 1, 2, 3, 4].map(p => [p, '0', '0', '0']), 'fetchTopicOffsets on an empty topic')

    await a.deleteTopics({ topics: [topic], timeout: 30000 })
    await waitFor(async () => !(await a.listTopics()).includes(topic), 'deleted topic gone from listTopics')
    return { created, partitionsAfter: 5, deleted: true }
  } finally {
    await a.disconnect()
  }
}

async function produce (tsvPath, codecName, acksArg, idempotentArg) {
  const codec = CODECS[codecName]
  assert(codec !== undefined, `unknown codec ${codecName}`)
  const acks = acksArg === 'all' ? -1 : Number(acksArg)
  const idempotent = idempotentArg === '1'
  const records = readTsv(tsvPath)
  const partitions = Math.max(...records.map(r => r.partition)) + 1

  const a = kafka.admin()
  await a.connect()
  try {
    await a.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }], waitForLeaders: true, timeout: 30000 })
  } finally {
    await a.disconnect()
  }

  const producer = kafka.producer(idempotent ? { idempotent: true, maxInFlightRequests: 1 } : {})
  await producer.connect()
  const sends = []
  try {
    // Two sends (so two batches per partition): the second batch's base offsets must
    // follow the first's.
    const half = Math.ceil(records.length / 2)
    for (const chunk of [records.slice(0, half), records.slice(half)]) {
      const res = await producer.send({ topic, messages: chunk, acks, compression: codec, timeout: 30000 })
      sends.push(res.map(r => ({ partition: r.partition, errorCode: r.errorCode, baseOffset: r.baseOffset })))
    }
  } finally {
    await producer.disconnect()
  }
  return { partitions, sends }
}

async function main () {
  let result
  if (scenario === 'admin') result = await admin()
  else if (scenario === 'produce') result = await produce(...rest)
  else throw new Error(`unknown scenario ${scenario}`)
  process.stdout.write('RESULT ' + JSON.stringify(result) + '\n')
}

main().then(() => process.exit(0), err => {
  console.error('kafkajs_test.js FAILED:', err && err.stack ? err.stack : err)
  if (err && err.errors) console.error('nested errors:', err.errors)
  process.exit(1)
})
