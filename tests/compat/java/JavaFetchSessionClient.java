// Apache Kafka Java client (3.9) driver for tests/compat/test_fetch_sessions.py:
// a KafkaConsumer (which fetches in KIP-227 incremental fetch sessions) reads
// a topic while a KafkaProducer writes to it, across partition additions and
// leader moves that the test makes meanwhile.
//
//   java -cp <kafka-clients jars> JavaFetchSessionClient <bootstrap> <topic> <group> <max-seconds>
//
// The producer (idempotent, acks=all) sends to every partition it knows, in
// rounds, the values "0", "1", "2", ... per partition; it learns new partitions
// from metadata (metadata.max.age.ms=500). The consumer subscribes in <group>
// (new partitions come with a rebalance; auto.offset.reset=earliest), commits
// synchronously after every poll, and checks as it reads that each partition's
// values come once and in order (the next value is always the count read so far).
//
//   stdin   STOP                   stop producing, flush, close; read until every
//                                  sent value is read; check; exit
//   stdout  SEEN <partition>       the first record of a partition was read
//           READ <n>               n records read so far (every 200)
//           BAD <description>      a value out of order, twice, or missing
//           RESULT ok              every sent value read exactly once, in order (exit 0)
//           RESULT fail <why>      (exit 1)
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class JavaFetchSessionClient {
    static final PrintStream OUT = new PrintStream(System.out, false, StandardCharsets.UTF_8);

    static void emit(String line) {
        synchronized (OUT) {
            OUT.println(line);
            OUT.flush();
        }
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], group = args[2];
        long maxMs = Long.parseLong(args[3]) * 1000L;
        long deadline = System.currentTimeMillis() + maxMs;
        AtomicBoolean stop = new AtomicBoolean(false);
        Map<Integer, Long> sent = new ConcurrentHashMap<>();
        AtomicLong failures = new AtomicLong();

        Thread stdin = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    if (line.trim().equals("STOP")) {
                        break;
                    }
                }
            } catch (Exception e) {
                // stdin closed: stop as well
            }
            stop.set(true);
        });
        stdin.setDaemon(true);
        stdin.start();

        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        pp.put(ProducerConfig.METADATA_MAX_AGE_CONFIG, "500");
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        KafkaProducer<String, String> producer = new KafkaProducer<>(pp);
        Thread produce = new Thread(() -> {
            while (!stop.get() && System.currentTimeMillis() < deadline) {
                int n = producer.partitionsFor(topic).size();
                for (int p = 0; p < n; p++) {
                    long seq = sent.getOrDefault(p, 0L);
                    sent.put(p, seq + 1);
                    final int part = p;
                    producer.send(new ProducerRecord<>(topic, p, null, Long.toString(seq)), (md, e) -> {
                        if (e != null) {
                            failures.incrementAndGet();
                            emit("BAD send to " + part + " failed: " + e);
                        }
                    });
                }
                try {
                    Thread.sleep(20); // pacing, not synchronisation
                } catch (InterruptedException e) {
                    return;
                }
            }
        });
        produce.start();

        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.METADATA_MAX_AGE_CONFIG, "500");
        cp.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "100");
        cp.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "100");
        Map<Integer, Long> read = new HashMap<>();
        List<String> bad = new ArrayList<>();
        long total = 0;
        boolean produced = false;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp)) {
            consumer.subscribe(List.of(topic));
            while (System.currentTimeMillis() < deadline + 60_000) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(100))) {
                    long expected = read.getOrDefault(r.partition(), 0L);
                    long got = Long.parseLong(r.value());
                    if (expected == 0 && got == 0) {
                        emit("SEEN " + r.partition());
                    }
                    if (got != expected) {
                        String why = "partition " + r.partition() + " offset " + r.offset() + ": value " + got
                                + ", expected " + expected;
                        bad.add(why);
                        emit("BAD " + why);
                    }
                    read.put(r.partition(), Math.max(expected, got + 1));
                    total++;
                    if (total % 200 == 0) {
                        emit("READ " + total);
                    }
                }
                consumer.commitSync();
                if (!produced && (stop.get() || System.currentTimeMillis() >= deadline)) {
                    stop.set(true);
                    produce.join();
                    producer.flush();
                    producer.close();
                    produced = true;
                }
                if (produced && read.equals(new HashMap<>(sent))) {
                    break;
                }
            }
        }
        if (!produced) {
            emit("RESULT fail the producer never stopped");
            System.exit(1);
        }
        if (failures.get() > 0 || !bad.isEmpty() || !read.equals(new HashMap<>(sent))) {
            emit("RESULT fail sent=" + new TreeMap<>(sent) + " read=" + new TreeMap<>(read) + " failures="
                    + failures.get() + " bad=" + bad.subList(0, Math.min(5, bad.size())));
            System.exit(1);
        }
        emit("SENT " + new TreeMap<>(sent));
        emit("RESULT ok");
        System.exit(0);
    }
}
