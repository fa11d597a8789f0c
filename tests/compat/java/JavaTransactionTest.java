// Apache Kafka Java client (3.9) transactions driver for tests/compat/test_transactions_java.py.
//
//   java -cp <kafka-clients and codec jars> JavaTransactionTest.java <bootstrap> <topic> <scenario>
//
// scenarios:
//   basic   two topics (3 + 2 partitions); transactions committed, aborted, committed;
//           read_committed and read_uncommitted KafkaConsumers (assign, no group) see
//           exactly the committed / all records, at the offsets around one control
//           record per partition per transaction; endOffsets (LSO / high watermark)
//           and positions are the end, past the control records; while a transaction
//           is open, read_committed endOffsets stop at the LSO.
//   ctp     consume-transform-produce: a read_committed group consumer (subscribe,
//           no auto commit) and a transactional producer; every poll's batch is one
//           transaction with sendOffsetsToTransaction(offsets, consumer.groupMetadata());
//           the output holds each input exactly once, the group's committed offsets
//           (Admin.listConsumerGroupOffsets) are the input's end offsets.
//   fence   two producers with one transactional.id: after the second's
//           initTransactions the first's commitTransaction throws ProducerFencedException;
//           only the second's records are committed.
//   admin   Admin.listTransactions() / describeTransactions() of an open, a committed and
//           an aborted transaction, checked against Admin.describeProducers() of the same
//           partitions (producer id and epoch), the partitions written and the timeout;
//           listTransactions(inStates) filters; an unknown id is TransactionalIdNotFoundException.
//
// Assertions run here; exits non-zero with a message on the first failure, prints
// `RESULT ok` on success.
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.TransactionalIdNotFoundException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class JavaTransactionTest extends TestSupport {
    static final long TIMEOUT_S = 30;
    static final int TXN_TIMEOUT_MS = 45000;
    static String bootstrap, topic;


    static byte[] b(String s) { return s.getBytes(StandardCharsets.UTF_8); }

    static String s(byte[] b) { return b == null ? null : new String(b, StandardCharsets.UTF_8); }

    static Admin admin() {
        return admin(bootstrap);
    }

    static void createTopic(String name, int partitions) throws Exception {
        createTopic(bootstrap, name, partitions, Map.of());
    }

    static KafkaProducer<byte[], byte[]> producer(String txid) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30000);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60000);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 60000);
        if (txid != null) {
            p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txid);
            p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, TXN_TIMEOUT_MS);
        }
        return new KafkaProducer<>(p);
    }

    static KafkaConsumer<byte[], byte[]> consumer(String isolation, String group) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 100);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30000);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60000);
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 6000);
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
        } else {
            p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        }
        return new KafkaConsumer<>(p);
    }

    /** p -> [(offset, value)] of every record in `t`, read from the beginning up to the
     *  end offsets under `isolation` (read_committed: the LSO); also checks that the
     *  positions then equal those end offsets (past any trailing control record). */
    record Read(Map<Integer, List<Long>> offsets, Map<Integer, List<String>> values, Map<Integer, Long> ends) {}

    static Read readAll(String t, int partitions, String isolation) throws Exception {
        try (KafkaConsumer<byte[], byte[]> c = consumer(isolation, null)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int p = 0; p < partitions; p++) tps.add(new TopicPartition(t, p));
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<Integer, Long> ends = new TreeMap<>();
            c.endOffsets(tps).forEach((tp, o) -> ends.put(tp.partition(), o));
            Map<Integer, List<Long>> offs = new TreeMap<>();
            Map<Integer, List<String>> vals = new TreeMap<>();
            for (int p = 0; p < partitions; p++) { offs.put(p, new ArrayList<>()); vals.put(p, new ArrayList<>()); }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_S);
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps) done &= c.position(tp) >= ends.get(tp.partition());
                if (done) break;
                check(System.nanoTime() < deadline, "timed out reading " + t + " (" + isolation + "): ends " + ends);
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                    offs.get(r.partition()).add(r.offset());
                    vals.get(r.partition()).add(s(r.value()));
                }
            }
            for (TopicPartition tp : tps) checkEq(ends.get(tp.partition()), c.position(tp), t + " position after reading everything (" + isolation + ")");
            return new Read(offs, vals, ends);
        }
    }

    static List<String> values(String tag, int p, int n) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < n; i++) out.add(tag + "-" + p + "-" + i);
        return out;
    }

    static void sendAll(KafkaProducer<byte[], byte[]> prod, String t, int partitions, String tag, int n) throws Exception {
        List<java.util.concurrent.Future<?>> fs = new ArrayList<>();
        for (int i = 0; i < n; i++)
            for (int p = 0; p < partitions; p++)
                fs.add(prod.send(new ProducerRecord<>(t, p, b("k" + i), b(tag + "-" + p + "-" + i))));
        prod.flush();
        for (var f : fs) f.get(TIMEOUT_S, TimeUnit.SECONDS);
    }

    // ------------------------------------------------------------------ basic
    static void scenarioBasic() throws Exception {
        String t1 = topic + "-a", t2 = topic + "-b";
        Map<String, Integer> parts = new LinkedHashMap<>();
        parts.put(t1, 3);
        parts.put(t2, 2);
        for (var e : parts.entrySet()) createTopic(e.getKey(), e.getValue());
        int n = 5;
        boolean[] commits = {true, false, true};
        try (KafkaProducer<byte[], byte[]> prod = producer("txid-" + topic)) {
            prod.initTransactions();
            for (int i = 0; i < commits.length; i++) {
                prod.beginTransaction();
                for (var e : parts.entrySet()) sendAll(prod, e.getKey(), e.getValue(), "txn" + i, n);
                if (commits[i]) prod.commitTransaction(); else prod.abortTransaction();
            }
            long end = 3L * (n + 1);
            for (var e : parts.entrySet()) {
                String t = e.getKey();
                Read rc = readAll(t, e.getValue(), "read_committed");
                Read ru = readAll(t, e.getValue(), "read_uncommitted");
                for (int p = 0; p < e.getValue(); p++) {
                    List<String> wantC = new ArrayList<>(values("txn0", p, n));
                    wantC.addAll(values("txn2", p, n));
                    List<String> wantU = new ArrayList<>(values("txn0", p, n));
                    wantU.addAll(values("txn1", p, n));
                    wantU.addAll(values("txn2", p, n));
                    checkEq(wantC, rc.values().get(p), t + "[" + p + "] read_committed values");
                    checkEq(wantU, ru.values().get(p), t + "[" + p + "] read_uncommitted values");
                    List<Long> offC = new ArrayList<>(), offU = new ArrayList<>();
                    for (long o = 0; o < end; o++) {
                        if (o == n || o == 2L * n + 1 || o == 3L * n + 2) continue; // control records
                        offU.add(o);
                        if (o < n || o > 2L * n + 1) offC.add(o);
                    }
                    checkEq(offC, rc.offsets().get(p), t + "[" + p + "] read_committed offsets");
                    checkEq(offU, ru.offsets().get(p), t + "[" + p + "] read_uncommitted offsets");
                    checkEq(end, rc.ends().get(p), t + "[" + p + "] read_committed end offset (LSO)");
                    checkEq(end, ru.ends().get(p), t + "[" + p + "] read_uncommitted end offset (high watermark)");
                }
            }
            // An open transaction: read_committed endOffsets stop at the LSO, read_uncommitted do not.
            prod.beginTransaction();
            sendAll(prod, t2, 2, "open", 2);
            Read rc = readAll(t2, 2, "read_committed");
            Read ru = readAll(t2, 2, "read_uncommitted");
            for (int p = 0; p < 2; p++) {
                checkEq(end, rc.ends().get(p), t2 + "[" + p + "] read_committed end with an open transaction");
                checkEq(end + 2, ru.ends().get(p), t2 + "[" + p + "] read_uncommitted end with an open transaction");
            }
            prod.commitTransaction();
            rc = readAll(t2, 2, "read_committed");
            for (int p = 0; p < 2; p++) checkEq(end + 3, rc.ends().get(p), t2 + "[" + p + "] end after the commit");
        }
    }

    // ------------------------------------------------------------------ ctp
    static void scenarioCtp() throws Exception {
        String in = topic + "-in", out = topic + "-out", group = "g-" + topic;
        int partitions = 3, per = 20;
        createTopic(in, partitions);
        createTopic(out, partitions);
        try (KafkaProducer<byte[], byte[]> plain = producer(null)) {
            sendAll(plain, in, partitions, "in", per);
        }
        Set<TopicPartition> inTps = new HashSet<>();
        for (int p = 0; p < partitions; p++) inTps.add(new TopicPartition(in, p));
        int batches = 0;
        try (KafkaProducer<byte[], byte[]> prod = producer("txid-" + topic);
             KafkaConsumer<byte[], byte[]> c = consumer("read_committed", group)) {
            prod.initTransactions();
            c.subscribe(List.of(in));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (true) {
                check(System.nanoTime() < deadline, "the processor did not finish within 60 s (" + batches + " transactions)");
                ConsumerRecords<byte[], byte[]> recs = c.poll(Duration.ofMillis(300));
                if (recs.isEmpty()) {
                    Map<TopicPartition, OffsetAndMetadata> committed = c.committed(inTps, Duration.ofSeconds(10));
                    boolean done = true;
                    for (TopicPartition tp : inTps) done &= committed.get(tp) != null && committed.get(tp).offset() >= per;
                    if (done) break;
                    continue;
                }
                prod.beginTransaction();
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                for (ConsumerRecord<byte[], byte[]> r : recs) {
                    prod.send(new ProducerRecord<>(out, r.partition(), r.key(), b("out:" + s(r.value()))));
                    offsets.put(new TopicPartition(in, r.partition()), new OffsetAndMetadata(r.offset() + 1));
                }
                prod.sendOffsetsToTransaction(offsets, c.groupMetadata());
                prod.commitTransaction();
                batches++;
            }
        }
        check(batches >= 1, "no transaction ran");
        Read got = readAll(out, partitions, "read_committed");
        for (int p = 0; p < partitions; p++) {
            List<String> want = values("in", p, per).stream().map(v -> "out:" + v).collect(Collectors.toList());
            checkEq(want, got.values().get(p), "output " + out + "[" + p + "] (read_committed): each input exactly once");
        }
        try (Admin a = admin()) {
            Map<TopicPartition, OffsetAndMetadata> committed = a.listConsumerGroupOffsets(group)
                .partitionsToOffsetAndMetadata().get(TIMEOUT_S, TimeUnit.SECONDS);
            for (TopicPartition tp : inTps) checkEq((long) per, committed.get(tp) == null ? null : committed.get(tp).offset(),
                "group " + group + " committed offset of " + tp);
        }
    }

    // ------------------------------------------------------------------ fence
    static void scenarioFence() throws Exception {
        createTopic(topic, 2);
        String txid = "txid-" + topic;
        KafkaProducer<byte[], byte[]> p1 = producer(txid);
        try (KafkaProducer<byte[], byte[]> p2 = producer(txid)) {
            p1.initTransactions();
            p1.beginTransaction();
            sendAll(p1, topic, 2, "zombie", 1);
            p2.initTransactions(); // bumps the epoch; the coordinator aborts p1's transaction
            p2.beginTransaction();
            sendAll(p2, topic, 2, "p2", 1);
            try {
                p1.commitTransaction();
                throw new AssertionError("the fenced producer's commitTransaction succeeded");
            } catch (ProducerFencedException e) {
                // expected (EndTxn with the old epoch: PRODUCER_FENCED)
            } finally {
                p1.close(Duration.ofSeconds(5));
            }
            p2.commitTransaction();
        }
        Read rc = readAll(topic, 2, "read_committed");
        Read ru = readAll(topic, 2, "read_uncommitted");
        for (int p = 0; p < 2; p++) {
            checkEq(values("p2", p, 1), rc.values().get(p), topic + "[" + p + "] read_committed");
            checkEq(List.of("zombie-" + p + "-0", "p2-" + p + "-0"), ru.values().get(p), topic + "[" + p + "] read_uncommitted");
        }
    }

    // ------------------------------------------------------------------ admin
    static void scenarioAdmin() throws Exception {
        createTopic(topic, 3);
        String txid = "txid-" + topic;
        TopicPartition p0 = new TopicPartition(topic, 0), p2 = new TopicPartition(topic, 2);
        try (Admin a = admin(); KafkaProducer<byte[], byte[]> prod = producer(txid)) {
            int nodeId = a.describeCluster().nodes().get(TIMEOUT_S, TimeUnit.SECONDS).iterator().next().id();
            prod.initTransactions();
            long t0 = System.currentTimeMillis();
            prod.beginTransaction();
            prod.send(new ProducerRecord<>(topic, 0, b("k"), b("v0"))).get(TIMEOUT_S, TimeUnit.SECONDS);
            prod.send(new ProducerRecord<>(topic, 2, b("k"), b("v2"))).get(TIMEOUT_S, TimeUnit.SECONDS);
            long t1 = System.currentTimeMillis();

            ProducerState ps = a.describeProducers(List.of(p0)).partitionResult(p0).get(TIMEOUT_S, TimeUnit.SECONDS)
                .activeProducers().get(0);
            checkEq(OptionalLong.of(0), ps.currentTransactionStartOffset(), "DescribeProducers currentTransactionStartOffset");

            Collection<TransactionListing> listed = a.listTransactions().all().get(TIMEOUT_S, TimeUnit.SECONDS);
            TransactionListing mine = listed.stream().filter(l -> l.transactionalId().equals(txid)).findFirst()
                .orElseThrow(() -> new AssertionError(txid + " not in listTransactions " + listed));
            checkEq(ps.producerId(), mine.producerId(), "listTransactions producerId");
            checkEq(TransactionState.ONGOING, mine.state(), "listTransactions state");
            Collection<TransactionListing> ongoing = a.listTransactions(new ListTransactionsOptions()
                .filterStates(List.of(TransactionState.ONGOING))).all().get(TIMEOUT_S, TimeUnit.SECONDS);
            check(ongoing.stream().anyMatch(l -> l.transactionalId().equals(txid)), "listTransactions(ONGOING) lacks " + txid);
            Collection<TransactionListing> byPid = a.listTransactions(new ListTransactionsOptions()
                .filterProducerIds(List.of(ps.producerId()))).all().get(TIMEOUT_S, TimeUnit.SECONDS);
            checkEq(List.of(txid), byPid.stream().map(TransactionListing::transactionalId).collect(Collectors.toList()),
                "listTransactions(filterProducerIds)");

            TransactionDescription d = a.describeTransactions(List.of(txid)).description(txid).get(TIMEOUT_S, TimeUnit.SECONDS);
            checkEq(nodeId, d.coordinatorId(), "describeTransactions coordinatorId");
            checkEq(TransactionState.ONGOING, d.state(), "describeTransactions state");
            checkEq(ps.producerId(), d.producerId(), "describeTransactions producerId");
            checkEq(ps.producerEpoch(), d.producerEpoch(), "describeTransactions producerEpoch");
            checkEq((long) TXN_TIMEOUT_MS, d.transactionTimeoutMs(), "describeTransactions transactionTimeoutMs");
            check(d.transactionStartTimeMs().isPresent() && d.transactionStartTimeMs().getAsLong() >= t0 - 1000
                && d.transactionStartTimeMs().getAsLong() <= t1, "transactionStartTimeMs " + d.transactionStartTimeMs() + " not in [" + t0 + ", " + t1 + "]");
            checkEq(Set.of(p0, p2), d.topicPartitions(), "describeTransactions topicPartitions");

            prod.commitTransaction();
            d = a.describeTransactions(List.of(txid)).description(txid).get(TIMEOUT_S, TimeUnit.SECONDS);
            checkEq(TransactionState.COMPLETE_COMMIT, d.state(), "state after commit");
            checkEq(Set.of(), d.topicPartitions(), "topicPartitions after commit");
            Collection<TransactionListing> ongoingAfter = a.listTransactions(new ListTransactionsOptions()
                .filterStates(List.of(TransactionState.ONGOING))).all().get(TIMEOUT_S, TimeUnit.SECONDS);
            check(ongoingAfter.stream().noneMatch(l -> l.transactionalId().equals(txid)), "listTransactions(ONGOING) still has " + txid);

            prod.beginTransaction();
            prod.send(new ProducerRecord<>(topic, 1, b("k"), b("aborted"))).get(TIMEOUT_S, TimeUnit.SECONDS);
            prod.abortTransaction();
            d = a.describeTransactions(List.of(txid)).description(txid).get(TIMEOUT_S, TimeUnit.SECONDS);
            checkEq(TransactionState.COMPLETE_ABORT, d.state(), "state after abort");
            checkEq(Set.of(), d.topicPartitions(), "topicPartitions after abort");

            try {
                a.describeTransactions(List.of("no-such-" + txid)).description("no-such-" + txid).get(TIMEOUT_S, TimeUnit.SECONDS);
                throw new AssertionError("describeTransactions of an unknown transactional id succeeded");
            } catch (ExecutionException e) {
                check(e.getCause() instanceof TransactionalIdNotFoundException, "unknown transactional id: " + e.getCause());
            }
        }
    }

    public static void main(String[] args) {
        if (args.length < 3) {
            System.err.println("usage: JavaTransactionTest <bootstrap> <topic> basic|ctp|fence|admin");
            System.exit(2);
        }
        bootstrap = args[0];
        topic = args[1];
        try {
            switch (args[2]) {
                case "basic" -> scenarioBasic();
                case "ctp" -> scenarioCtp();
                case "fence" -> scenarioFence();
                case "admin" -> scenarioAdmin();
                default -> throw new IllegalArgumentException("unknown scenario " + args[2]);
            }
        } catch (Throwable t) {
            System.err.println("JavaTransactionTest FAILED (" + args[2] + "): " + t);
            t.printStackTrace();
            System.exit(1);
        }
        System.out.println("RESULT ok");
        System.exit(0);
    }
}
