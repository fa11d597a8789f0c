// What the kafkajs drivers share: a client that logs to stderr (stdout carries
// the RESULT line the Python side reads) and a wait with a deadline.
'use strict'

const { Kafka, logLevel } = require('kafkajs')

const stderrLogger = () => ({ namespace, level, label, log }) => {
  const { message, ...extra } = log
  process.stderr.write(`[kafkajs ${label}] ${namespace}: ${message} ${JSON.stringify(extra)}\n`)
}

/** A kafkajs client of one broker with the compat tests' timeouts and retries. */
function makeKafka (clientId, bootstrap) {
  return new Kafka({
    clientId,
    brokers: [bootstrap],
    connectionTimeout: 10000,
    requestTimeout: 30000,
    retry: { retries: 5, initialRetryTime: 200 },
    logLevel: logLevel.WARN,
    logCreator: stderrLogger
  })
}

function sleep (ms) { return new Promise(resolve => setTimeout(resolve, ms)) }

/** Polls `pred` every 100 ms until it is true; a throw counts as not yet. */
async function waitFor (pred, what, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs
  let last
  for (;;) {
    try {
      if (await pred()) return
    } catch (e) { last = e }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ': ' + last : ''}`)
    await sleep(100)
  }
}

module.exports = { makeKafka, sleep, stderrLogger, waitFor }
