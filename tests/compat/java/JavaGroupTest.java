// Apache Kafka Java client (3.9, classic group protocol) consumer-group driver for
// tests/compat/test_groups_java.py.
//
//   java -cp <kafka-clients and codec jars> JavaGroupTest.java <bootstrap> <topic> <group> <range|cooperative-sticky>
//
// 1. AdminClient creates <topic> with 4 partitions; the producer writes 20 records per partition.
// 2. Consumer A (its own thread; KafkaConsumer is not thread-safe) subscribes, reads them
//    and commitSync()s after every batch; rebalance listener events are recorded.
// 3. Consumer B joins the group: the partitions split 2 + 2 (range: A's listener sees all
//    of its partitions revoked; cooperative-sticky: only the 2 that move to B, and A keeps
//    the others). B starts at the committed offsets (nothing re-read). Another 20 records
//    per partition are produced and consumed; every record exactly once across A and B.
// 4. committed() from each consumer for its partitions; AdminClient listConsumerGroups /
//    describeConsumerGroups (state, members, assignments, assignor) /
//    listConsumerGroupOffsets; deleteConsumerGroups (GroupNotEmptyException) and
//    deleteConsumerGroupOffsets of a subscribed topic (GroupSubscribedToTopicException)
//    while it is active.
// 5. Both close (LeaveGroup): describe shows Empty; alterConsumerGroupOffsets,
//    deleteConsumerGroupOffsets (OffsetDelete), listConsumerGroupOffsets, deleteConsumerGroups.
//
// Assertions run here; exits non-zero with a message on the first failure, prints
// `RESULT ok` on success.
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.ConsumerGroupState;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.GroupSubscribedToTopicException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class JavaGroupTest extends TestSupport {
    static final long TIMEOUT_S = 45;
    static final int PARTITIONS = 4;
    static final int PER_ROUND = 20; // records per partition per round
    static String bootstrap, topic, group, assignor;

    static void waitUntil(Cond c, String what) throws Exception {
        waitUntil(TIMEOUT_S, c, what);
    }

    static Set<Integer> parts(Collection<TopicPartition> tps) {
        return tps.stream().map(TopicPartition::partition).collect(Collectors.toCollection(TreeSet::new));
    }

    static Set<Integer> range(int from, int to) {
        Set<Integer> s = new TreeSet<>();
        for (int i = from; i < to; i++) s.add(i);
        return s;
    }

    /** One group member: a consumer owned by its own thread. */
    static class Member implements Runnable {
        final String name;
        final Thread thread;
        final List<String> events = Collections.synchronizedList(new ArrayList<>()); // "assigned [..]" / "revoked [..]" / "lost [..]"
        final List<long[]> consumed = Collections.synchronizedList(new ArrayList<>()); // {partition, offset}
        final Map<String, String> values = new ConcurrentHashMap<>(); // "p/o" -> value
        final List<String> commitErrors = Collections.synchronizedList(new ArrayList<>());
        volatile Set<Integer> assignment = Set.of();
        volatile String memberId = null;
        volatile boolean stop = false;
        volatile Throwable failure = null;
        final BlockingQueue<Callable<Object>> calls = new LinkedBlockingQueue<>();
        volatile KafkaConsumer<byte[], byte[]> consumer;

        Member(String name) {
            this.name = name;
            this.thread = new Thread(this, "member-" + name);
        }

        Member start() {
            thread.start();
            return this;
        }

        public void run() {
            Properties p = new Properties();
            p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.CLIENT_ID_CONFIG, name);
            p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
            p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
            p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
            p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 6000);
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
            p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 100);
            p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor.equals("range")
                ? RangeAssignor.class.getName() : CooperativeStickyAssignor.class.getName());
            p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30000);
            p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60000);
            try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
                consumer = c;
                c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                    public void onPartitionsRevoked(Collection<TopicPartition> ps) { events.add("revoked " + parts(ps)); }
                    public void onPartitionsAssigned(Collection<TopicPartition> ps) { events.add("assigned " + parts(ps)); }
                    public void onPartitionsLost(Collection<TopicPartition> ps) { events.add("lost " + parts(ps)); }
                });
                while (!stop) {
                    ConsumerRecords<byte[], byte[]> recs = c.poll(Duration.ofMillis(100));
                    for (ConsumerRecord<byte[], byte[]> r : recs) {
                        consumed.add(new long[]{r.partition(), r.offset()});
                        values.put(r.partition() + "/" + r.offset(), new String(r.value(), StandardCharsets.UTF_8));
                    }
                    if (!recs.isEmpty()) {
                        try {
                            c.commitSync(Duration.ofSeconds(30));
                        } catch (Exception e) {
                            commitErrors.add(e.toString());
                        }
                    }
                    assignment = parts(c.assignment());
                    if (memberId == null && !assignment.isEmpty()) memberId = c.groupMetadata().memberId();
                    Callable<Object> call;
                    while ((call = calls.poll()) != null) call.call();
                }
            } catch (Throwable t) {
                failure = t;
            }
        }

        /** Runs fn in the member's thread (the consumer is not thread-safe). */
        <T> T call(Callable<T> fn) throws Exception {
            CompletableFuture<T> f = new CompletableFuture<>();
            calls.add(() -> {
                try {
                    f.complete(fn.call());
                } catch (Throwable t) {
                    f.completeExceptionally(t);
                }
                return null;
            });
            return f.get(TIMEOUT_S, TimeUnit.SECONDS);
        }

        void close() throws Exception {
            stop = true;
            thread.join(TimeUnit.SECONDS.toMillis(TIMEOUT_S));
            check(!thread.isAlive(), name + ": consumer did not close within " + TIMEOUT_S + "s");
            if (failure != null) throw new AssertionError(name + " failed: " + failure, failure);
        }

        List<String> nonEmptyEvents() {
            synchronized (events) {
                return events.stream().filter(e -> !e.endsWith("[]")).toList();
            }
        }
    }

    static Admin admin() {
        return admin(bootstrap);
    }

    static void produceRound(int round) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        try (KafkaProducer<byte[], byte[]> prod = new KafkaProducer<>(p)) {
            List<Future<RecordMetadata>> fs = new ArrayList<>();
            for (int i = 0; i < PARTITIONS * PER_ROUND; i++) {
                int part = i % PARTITIONS;
                long off = (long) round * PER_ROUND + i / PARTITIONS;
                fs.add(prod.send(new ProducerRecord<>(topic, part, ("key-" + i).getBytes(StandardCharsets.UTF_8),
                    value(part, off).getBytes(StandardCharsets.UTF_8))));
            }
            prod.flush();
            for (int i = 0; i < fs.size(); i++) {
                RecordMetadata m = fs.get(i).get(60, TimeUnit.SECONDS);
                checkEq((long) round * PER_ROUND + i / PARTITIONS, m.offset(), "offset of produced record #" + i);
            }
        }
    }

    static String value(int partition, long offset) {
        return "value-" + partition + "-" + offset;
    }

    static <T> T get(KafkaFuture<T> f) throws Exception {
        return f.get(TIMEOUT_S, TimeUnit.SECONDS);
    }

    static Throwable failureOf(KafkaFuture<?> f) throws Exception {
        try {
            f.get(TIMEOUT_S, TimeUnit.SECONDS);
            return null;
        } catch (ExecutionException e) {
            return e.getCause();
        }
    }

    static Map<Integer, Long> groupOffsets(Admin a) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> m = get(a.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
        Map<Integer, Long> out = new TreeMap<>();
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : m.entrySet()) {
            checkEq(topic, e.getKey().topic(), "topic of a committed offset");
            if (e.getValue() != null) out.put(e.getKey().partition(), e.getValue().offset());
        }
        return out;
    }

    public static void main(String[] args) throws Exception {
        bootstrap = args[0];
        topic = args[1];
        group = args[2];
        assignor = args[3];
        boolean cooperative = assignor.equals("cooperative-sticky");
        check(cooperative || assignor.equals("range"), "assignor must be range or cooperative-sticky");

        try (Admin a = admin()) {
            get(a.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all());
            waitUntil(() -> get(a.describeTopics(List.of(topic)).allTopicNames()).get(topic).partitions().size() == PARTITIONS, "topic");
            produceRound(0);

            // A alone reads round 0.
            Member ma = new Member("java-a").start();
            Member mb = null;
            try {
                // (assignment is refreshed after the poll that returned the records)
                waitUntil(() -> ma.consumed.size() >= PARTITIONS * PER_ROUND && !ma.assignment.isEmpty(), "A to read round 0");
                checkEq(range(0, PARTITIONS), ma.assignment, "A's assignment alone");
                checkEq(List.of("assigned " + range(0, PARTITIONS)), ma.nonEmptyEvents(), "A's events alone");

                Member b = mb = new Member("java-b").start();
                waitUntil(() -> b.assignment.size() == 2 && ma.assignment.size() == 2, "a 2 + 2 split");
                Set<Integer> union = new TreeSet<>(ma.assignment);
                union.addAll(b.assignment);
                checkEq(range(0, PARTITIONS), union, "A and B assignments cover all partitions");
                List<String> evA = ma.nonEmptyEvents(), evB = b.nonEmptyEvents();
                if (cooperative) {
                    // Incremental: A gives up exactly what B gets, nothing else.
                    checkEq(List.of("assigned " + range(0, PARTITIONS), "revoked " + b.assignment), evA, "A's events (cooperative)");
                } else {
                    checkEq(List.of("assigned " + range(0, PARTITIONS), "revoked " + range(0, PARTITIONS), "assigned " + ma.assignment),
                        evA, "A's events (eager)");
                }
                checkEq(List.of("assigned " + b.assignment), evB, "B's events");

                produceRound(1);
                int total = 2 * PARTITIONS * PER_ROUND;
                waitUntil(() -> ma.consumed.size() + b.consumed.size() >= total, "everything consumed");
                Thread.sleep(1500); // duplicates, if any, would arrive now

                // Exactly once: round 0 by A; round 1 by the owner of each partition.
                Map<String, Integer> seen = new TreeMap<>();
                for (Member m : List.of(ma, b)) {
                    synchronized (m.consumed) {
                        for (long[] r : m.consumed) {
                            seen.merge(r[0] + "/" + r[1], 1, Integer::sum);
                            checkEq(value((int) r[0], r[1]), m.values.get(r[0] + "/" + r[1]), "value at " + r[0] + "/" + r[1]);
                            if (r[1] >= PER_ROUND) check(m.assignment.contains((int) r[0]), m.name + " read p" + r[0] + "@" + r[1] + " it does not own");
                        }
                    }
                }
                List<String> dups = seen.entrySet().stream().filter(e -> e.getValue() > 1).map(Map.Entry::getKey).toList();
                check(dups.isEmpty(), "records consumed twice: " + dups);
                checkEq(total, seen.size(), "distinct records consumed");
                check(ma.commitErrors.isEmpty() && b.commitErrors.isEmpty(), "commit errors: " + ma.commitErrors + " " + b.commitErrors);

                // committed() from each member for its own partitions.
                for (Member m : List.of(ma, b)) {
                    Set<TopicPartition> mine = m.assignment.stream().map(p -> new TopicPartition(topic, p)).collect(Collectors.toSet());
                    Map<TopicPartition, OffsetAndMetadata> c = m.call(() -> m.consumer.committed(mine, Duration.ofSeconds(30)));
                    for (TopicPartition tp : mine) checkEq(2L * PER_ROUND, c.get(tp).offset(), m.name + " committed(" + tp + ")");
                }

                // Admin while both are members.
                Collection<ConsumerGroupListing> listed = get(a.listConsumerGroups().all());
                checkEq(List.of(group), listed.stream().map(ConsumerGroupListing::groupId).toList(), "listConsumerGroups");
                ConsumerGroupListing l = listed.iterator().next();
                checkEq(Optional.of(ConsumerGroupState.STABLE), l.state(), "listed state");
                check(!l.isSimpleConsumerGroup(), "listed as a simple group");

                ConsumerGroupDescription d = get(a.describeConsumerGroups(List.of(group)).describedGroups().get(group));
                checkEq(group, d.groupId(), "described group id");
                checkEq(ConsumerGroupState.STABLE, d.state(), "described state");
                checkEq(assignor, d.partitionAssignor(), "described assignor");
                checkEq(1, d.coordinator().id(), "coordinator");
                check(!d.isSimpleConsumerGroup(), "described as simple");
                Map<String, Set<Integer>> described = new TreeMap<>();
                for (MemberDescription md : d.members()) {
                    checkEq("/127.0.0.1", md.host(), "member host");
                    described.put(md.clientId(), parts(md.assignment().topicPartitions()));
                    checkEq(md.clientId().equals("java-a") ? ma.memberId : b.memberId, md.consumerId(), "member id of " + md.clientId());
                }
                checkEq(Map.of("java-a", ma.assignment, "java-b", b.assignment), described, "described members");

                Map<Integer, Long> all = new TreeMap<>();
                for (int p = 0; p < PARTITIONS; p++) all.put(p, 2L * PER_ROUND);
                checkEq(all, groupOffsets(a), "listConsumerGroupOffsets");

                Throwable t = failureOf(a.deleteConsumerGroups(List.of(group)).all());
                check(t instanceof GroupNotEmptyException, "deleteConsumerGroups of an active group: " + t);
                t = failureOf(a.deleteConsumerGroupOffsets(group, Set.of(new TopicPartition(topic, 0))).all());
                check(t instanceof GroupSubscribedToTopicException, "deleteConsumerGroupOffsets of a subscribed topic: " + t);
            } finally {
                ma.close();
                if (mb != null) mb.close();
            }

            // Empty group.
            ConsumerGroupDescription d = get(a.describeConsumerGroups(List.of(group)).describedGroups().get(group));
            checkEq(ConsumerGroupState.EMPTY, d.state(), "state after both closed");
            checkEq(0, d.members().size(), "members after both closed");

            get(a.alterConsumerGroupOffsets(group, Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(5, "five"))).all());
            get(a.deleteConsumerGroupOffsets(group, Set.of(new TopicPartition(topic, 1))).all());
            Map<Integer, Long> want = new TreeMap<>(Map.of(0, 5L, 2, 2L * PER_ROUND, 3, 2L * PER_ROUND));
            checkEq(want, groupOffsets(a), "offsets after alter + delete");
            OffsetAndMetadata om = get(a.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()).get(new TopicPartition(topic, 0));
            checkEq("five", om.metadata(), "metadata of the altered offset");

            get(a.deleteConsumerGroups(List.of(group)).all());
            checkEq(List.of(), get(a.listConsumerGroups().all()).stream().map(ConsumerGroupListing::groupId).toList(), "groups after delete");
        }
        System.out.println("RESULT ok");
        System.exit(0);
    }
}
