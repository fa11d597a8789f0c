// Apache Kafka Java client (3.9) driver for tests/compat/test_java.py.
//
//   java -cp <kafka-clients and codec jars> JavaClientTest.java <bootstrap> <topic> <scenario> [args]
//
// scenarios:
//   admin                         AdminClient: create (with a config) / describe topics,
//                                 configs, cluster / create partitions / delete
//   produce <records.tsv> <codec> KafkaProducer defaults (idempotent, acks=all) with the
//                                 codec; KafkaConsumer assign + seekToBeginning; exact compare
//   acks <records.tsv> <0|1|all>  non-idempotent producer with the given acks; exact compare
//   times <records.tsv>           records with explicit timestamps; offsetsForTimes,
//                                 beginningOffsets / endOffsets, seek
//
// Records come from a TSV file written by compat_util.write_tsv (partition, timestamp,
// key, value, header name/value pairs; base64, "-" = null). Assertions run here; the
// process exits non-zero with a message on the first failure and prints `RESULT ok`
// on success. The consumer uses no group.id (no group coordinator needed).
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class JavaClientTest extends TestSupport {
    static final long TIMEOUT_S = 30;
    static String bootstrap;
    static String topic;

    // ------------------------------------------------------------------ records
    record Hdr(String key, byte[] value) {}

    record Rec(int partition, Long timestamp, byte[] key, byte[] value, List<Hdr> headers) {
        String describe() {
            StringBuilder sb = new StringBuilder("p=" + partition + " key=" + show(key) + " value=" + show(value) + " headers=[");
            for (Hdr h : headers) sb.append(h.key()).append('=').append(show(h.value())).append(' ');
            return sb.append(']').toString();
        }
    }

    static String show(byte[] b) {
        if (b == null) return "null";
        String s = new String(b, 0, Math.min(b.length, 40), StandardCharsets.UTF_8);
        return b.length > 40 ? "'" + s + "'...(" + b.length + " bytes)" : "'" + s + "'";
    }

    static byte[] unb64(String s) {
        return s.equals("-") ? null : Base64.getDecoder().decode(s);
    }

    static List<Rec> readTsv(String path) throws Exception {
        List<Rec> out = new ArrayList<>();
        for (String line : Files.readAllLines(Path.of(path), StandardCharsets.UTF_8)) {
            if (line.isEmpty()) continue;
            String[] f = line.split("\t", -1);
            List<Hdr> hs = new ArrayList<>();
            for (int i = 4; i + 1 < f.length; i += 2) hs.add(new Hdr(new String(unb64(f[i]), StandardCharsets.UTF_8), unb64(f[i + 1])));
            out.add(new Rec(Integer.parseInt(f[0]), f[1].equals("-") ? null : Long.parseLong(f[1]), unb64(f[2]), unb64(f[3]), hs));
        }
        return out;
    }

    static int partitionCount(List<Rec> recs) {
        return recs.stream().mapToInt(Rec::partition).max().orElse(0) + 1;
    }

    // ------------------------------------------------------------------ helpers

    static Admin admin() {
        return admin(bootstrap);
    }

    static void createTopic(String name, int partitions, Map<String, String> configs) throws Exception {
        createTopic(bootstrap, name, partitions, configs);
    }

    static KafkaProducer<byte[], byte[]> producer(Map<String, Object> extra) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30000);
        p.putAll(extra);
        return new KafkaProducer<>(p);
    }

    static KafkaConsumer<byte[], byte[]> consumer() {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false); // no group.id: assign only
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 100);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30000);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60000);
        return new KafkaConsumer<>(p);
    }

    /** Sends all records (in order), returns their metadata. */
    static List<RecordMetadata> send(KafkaProducer<byte[], byte[]> prod, List<Rec> recs) throws Exception {
        List<Future<RecordMetadata>> fs = new ArrayList<>();
        for (Rec r : recs) {
            List<Header> hs = new ArrayList<>();
            for (Hdr h : r.headers()) hs.add(new RecordHeader(h.key(), h.value()));
            fs.add(prod.send(new ProducerRecord<>(topic, r.partition(), r.timestamp(), r.key(), r.value(), hs)));
        }
        prod.flush();
        List<RecordMetadata> out = new ArrayList<>();
        for (Future<RecordMetadata> f : fs) out.add(f.get(60, TimeUnit.SECONDS));
        return out;
    }

    static void checkOffsets(List<Rec> recs, List<RecordMetadata> metas) {
        Map<Integer, Long> next = new HashMap<>();
        for (int i = 0; i < recs.size(); i++) {
            RecordMetadata m = metas.get(i);
            checkEq(recs.get(i).partition(), m.partition(), "record #" + i + " partition");
            long want = next.getOrDefault(m.partition(), 0L);
            checkEq(want, m.offset(), "record #" + i + " offset in partition " + m.partition());
            next.put(m.partition(), want + 1);
        }
    }

    /** Assign all partitions, seekToBeginning, read until the expected counts, compare exactly. */
    static void consumeAndCompare(List<Rec> recs, long lo, long hi) {
        int n = partitionCount(recs);
        Map<Integer, List<Rec>> want = new HashMap<>();
        for (int p = 0; p < n; p++) want.put(p, new ArrayList<>());
        for (Rec r : recs) want.get(r.partition()).add(r);
        Map<Integer, List<ConsumerRecord<byte[], byte[]>>> got = new HashMap<>();
        for (int p = 0; p < n; p++) got.put(p, new ArrayList<>());
        List<TopicPartition> tps = new ArrayList<>();
        for (int p = 0; p < n; p++) tps.add(new TopicPartition(topic, p));
        try (KafkaConsumer<byte[], byte[]> c = consumer()) {
            c.assign(tps);
            c.seekToBeginning(tps);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (true) {
                boolean done = true;
                for (int p = 0; p < n; p++) done &= got.get(p).size() >= want.get(p).size();
                if (done) break;
                check(System.nanoTime() < deadline, "timed out consuming");
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) got.get(r.partition()).add(r);
            }
            Map<TopicPartition, Long> end = c.endOffsets(tps);
            for (int p = 0; p < n; p++) checkEq((long) want.get(p).size(), end.get(tps.get(p)), "end offset of partition " + p);
        }
        for (int p = 0; p < n; p++) {
            List<Rec> w = want.get(p);
            List<ConsumerRecord<byte[], byte[]>> g = got.get(p);
            checkEq(w.size(), g.size(), "record count in partition " + p);
            for (int i = 0; i < w.size(); i++) {
                Rec e = w.get(i);
                ConsumerRecord<byte[], byte[]> r = g.get(i);
                String where = "partition " + p + " record #" + i + " (expected " + e.describe() + ")";
                checkEq((long) i, r.offset(), where + " offset");
                check(Arrays.equals(e.key(), r.key()), where + ": key " + show(r.key()));
                check(Arrays.equals(e.value(), r.value()), where + ": value " + show(r.value()));
                Header[] hs = r.headers().toArray();
                checkEq(e.headers().size(), hs.length, where + ": header count");
                for (int j = 0; j < hs.length; j++) {
                    checkEq(e.headers().get(j).key(), hs[j].key(), where + ": header #" + j + " key");
                    check(Arrays.equals(e.headers().get(j).value(), hs[j].value()), where + ": header #" + j + " value " + show(hs[j].value()));
                }
                checkEq(TimestampType.CREATE_TIME, r.timestampType(), where + ": timestamp type");
                if (e.timestamp() != null) checkEq(e.timestamp(), r.timestamp(), where + ": timestamp");
                else check(r.timestamp() >= lo && r.timestamp() <= hi, where + ": timestamp " + r.timestamp() + " outside [" + lo + ", " + hi + "]");
            }
        }
    }

    // ------------------------------------------------------------------ scenarios
    static void scenarioAdmin() throws Exception {
        try (Admin a = admin()) {
            a.createTopics(List.of(new NewTopic(topic, 3, (short) 1).configs(Map.of("retention.ms", "3600000"))))
                .all().get(TIMEOUT_S, TimeUnit.SECONDS);
            waitUntil(() -> a.listTopics().names().get().contains(topic), "topic listed");

            TopicDescription d = a.describeTopics(List.of(topic)).allTopicNames().get(TIMEOUT_S, TimeUnit.SECONDS).get(topic);
            checkEq(3, d.partitions().size(), "partitions");
            check(!d.isInternal(), "internal");
            for (TopicPartitionInfo pi : d.partitions()) {
                checkEq(1, pi.leader().id(), "leader of " + pi.partition());
                checkEq(List.of(1), pi.replicas().stream().map(Node::id).toList(), "replicas of " + pi.partition());
                checkEq(List.of(1), pi.isr().stream().map(Node::id).toList(), "isr of " + pi.partition());
            }
            check(d.topicId() != null && !d.topicId().toString().equals("AAAAAAAAAAAAAAAAAAAAAA"), "topic id is set: " + d.topicId());

            try {
                a.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get(TIMEOUT_S, TimeUnit.SECONDS);
                throw new AssertionError("creating an existing topic succeeded");
            } catch (java.util.concurrent.ExecutionException e) {
                check(e.getCause() instanceof TopicExistsException, "duplicate create: " + e.getCause());
            }

            DescribeClusterResult dc = a.describeCluster();
            Collection<Node> nodes = dc.nodes().get(TIMEOUT_S, TimeUnit.SECONDS);
            checkEq(1, nodes.size(), "cluster size");
            Node node = nodes.iterator().next();
            checkEq(1, node.id(), "node id");
            checkEq("127.0.0.1:" + bootstrap.split(":")[1], node.host() + ":" + node.port(), "node address");
            check(dc.clusterId().get(TIMEOUT_S, TimeUnit.SECONDS) != null, "cluster id");

            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            Config cfg = a.describeConfigs(List.of(res)).all().get(TIMEOUT_S, TimeUnit.SECONDS).get(res);
            checkEq("3600000", cfg.get("retention.ms").value(), "retention.ms");
            checkEq(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, cfg.get("retention.ms").source(), "retention.ms source");
            checkEq("delete", cfg.get("cleanup.policy").value(), "cleanup.policy");
            checkEq("1073741824", cfg.get("segment.bytes").value(), "segment.bytes");
            checkEq("1048588", cfg.get("max.message.bytes").value(), "max.message.bytes");

            a.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET))))
                .all().get(TIMEOUT_S, TimeUnit.SECONDS);
            cfg = a.describeConfigs(List.of(res)).all().get(TIMEOUT_S, TimeUnit.SECONDS).get(res);
            checkEq("7200000", cfg.get("retention.ms").value(), "retention.ms after incrementalAlterConfigs");
            a.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE))))
                .all().get(TIMEOUT_S, TimeUnit.SECONDS);
            cfg = a.describeConfigs(List.of(res)).all().get(TIMEOUT_S, TimeUnit.SECONDS).get(res);
            checkEq("604800000", cfg.get("retention.ms").value(), "retention.ms back to the default after DELETE");

            ConfigResource bres = new ConfigResource(ConfigResource.Type.BROKER, "1");
            Config bcfg = a.describeConfigs(List.of(bres)).all().get(TIMEOUT_S, TimeUnit.SECONDS).get(bres);
            checkEq("1", bcfg.get("num.partitions").value(), "broker num.partitions");

            a.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all().get(TIMEOUT_S, TimeUnit.SECONDS);
            waitUntil(() -> a.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size() == 5, "5 partitions");

            a.deleteTopics(List.of(topic)).all().get(TIMEOUT_S, TimeUnit.SECONDS);
            waitUntil(() -> !a.listTopics().names().get().contains(topic), "topic deleted");
        }
    }

    static void scenarioProduce(String tsv, String codec) throws Exception {
        List<Rec> recs = readTsv(tsv);
        createTopic(topic, partitionCount(recs), Map.of());
        long lo = System.currentTimeMillis();
        List<RecordMetadata> metas;
        // Defaults: enable.idempotence=true, acks=all (Kafka client >= 3.0).
        try (KafkaProducer<byte[], byte[]> prod = producer(Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec))) {
            metas = send(prod, recs);
        }
        long hi = System.currentTimeMillis();
        checkOffsets(recs, metas);
        consumeAndCompare(recs, lo, hi);
    }

    static void scenarioAcks(String tsv, String acks) throws Exception {
        List<Rec> recs = readTsv(tsv);
        createTopic(topic, partitionCount(recs), Map.of());
        long lo = System.currentTimeMillis();
        List<RecordMetadata> metas;
        try (KafkaProducer<byte[], byte[]> prod = producer(Map.of(ProducerConfig.ACKS_CONFIG, acks,
                ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, false, ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4"))) {
            metas = send(prod, recs);
        }
        long hi = System.currentTimeMillis();
        if (acks.equals("0")) {
            for (RecordMetadata m : metas) checkEq(-1L, m.offset(), "acks=0 offset is unknown (-1)");
        } else {
            checkOffsets(recs, metas);
        }
        consumeAndCompare(recs, lo, hi);
    }

    static List<Object> ots(OffsetAndTimestamp o) {
        return o == null ? null : List.of(o.offset(), o.timestamp(), o.leaderEpoch());
    }

    static void scenarioTimes(String tsv) throws Exception {
        List<Rec> recs = readTsv(tsv);
        int n = partitionCount(recs);
        createTopic(topic, n, Map.of());
        try (KafkaProducer<byte[], byte[]> prod = producer(Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, "zstd"))) {
            checkOffsets(recs, send(prod, recs));
        }
        consumeAndCompare(recs, 0, Long.MAX_VALUE);
        // Timestamps per partition are base + j*1000 for j = 0..count-1 (see test_java.py).
        long base = recs.get(0).timestamp();
        long perPartition = recs.stream().filter(r -> r.partition() == 0).count();
        TopicPartition tp0 = new TopicPartition(topic, 0);
        try (KafkaConsumer<byte[], byte[]> c = consumer()) {
            Map<TopicPartition, OffsetAndTimestamp> r = c.offsetsForTimes(Map.of(tp0, base + 5500));
            checkEq(List.of(6L, base + 6000, Optional.of(0)), ots(r.get(tp0)), "offsetsForTimes(base+5500) [offset, timestamp, leaderEpoch]");
            r = c.offsetsForTimes(Map.of(tp0, base));
            checkEq(List.of(0L, base, Optional.of(0)), ots(r.get(tp0)), "offsetsForTimes(base) [offset, timestamp, leaderEpoch]");
            r = c.offsetsForTimes(Map.of(tp0, base + 1_000_000));
            checkEq(null, r.get(tp0), "offsetsForTimes after the last record");
            checkEq(Map.of(tp0, 0L), c.beginningOffsets(List.of(tp0)), "beginningOffsets");
            checkEq(Map.of(tp0, perPartition), c.endOffsets(List.of(tp0)), "endOffsets");
            c.assign(List.of(tp0));
            c.seek(tp0, 7);
            List<Long> offsets = new ArrayList<>();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (offsets.size() < perPartition - 7 && System.nanoTime() < deadline)
                for (ConsumerRecord<byte[], byte[]> rec : c.poll(Duration.ofMillis(500))) offsets.add(rec.offset());
            List<Long> want = new ArrayList<>();
            for (long o = 7; o < perPartition; o++) want.add(o);
            checkEq(want, offsets, "offsets after seek(7)");
        }
        try (Admin a = admin()) {
            ListOffsetsResult.ListOffsetsResultInfo info = a.listOffsets(Map.of(tp0, OffsetSpec.maxTimestamp())).partitionResult(tp0).get(TIMEOUT_S, TimeUnit.SECONDS);
            checkEq(perPartition - 1, info.offset(), "listOffsets(maxTimestamp) offset");
            checkEq(base + (perPartition - 1) * 1000, info.timestamp(), "listOffsets(maxTimestamp) timestamp");
            info = a.listOffsets(Map.of(tp0, OffsetSpec.forTimestamp(base + 2000))).partitionResult(tp0).get(TIMEOUT_S, TimeUnit.SECONDS);
            checkEq(2L, info.offset(), "listOffsets(forTimestamp(base+2000))");
        }
    }

    public static void main(String[] args) {
        if (args.length < 3) {
            System.err.println("usage: JavaClientTest <bootstrap> <topic> admin|produce|acks|times [args]");
            System.exit(2);
        }
        bootstrap = args[0];
        topic = args[1];
        try {
            switch (args[2]) {
                case "admin" -> scenarioAdmin();
                case "produce" -> scenarioProduce(args[3], args[4]);
                case "acks" -> scenarioAcks(args[3], args[4]);
                case "times" -> scenarioTimes(args[3]);
                default -> throw new IllegalArgumentException("unknown scenario " + args[2]);
            }
        } catch (Throwable t) {
            System.err.println("JavaClientTest FAILED (" + args[2] + "): " + t);
            t.printStackTrace();
            System.exit(1);
        }
        System.out.println("RESULT ok");
        System.exit(0);
    }
}
