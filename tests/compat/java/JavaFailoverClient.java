// Apache Kafka Java client (3.9) driver for tests/compat/test_cluster_clients.py:
// produce through a leader failure, then read everything back.
//
//   java -cp <kafka-clients and codec jars> JavaFailoverClient <bootstrap> <topic> <partitions> <rate/s> <max-seconds>
//
// A KafkaProducer with the Java defaults (enable.idempotence=true, acks=all,
// retries=MAX_VALUE, max.in.flight.requests.per.connection=5) sends the values
// "0", "1", "2", ... (partition = seq % partitions) at about <rate> records/s and
// reports every delivery on stdout. The test steers it through stdin:
//
//   stdin   MARK   answer `MARK <seq>`: every record from <seq> on is sent after this line was read
//           STOP   stop sending, flush (bounded by delivery.timeout.ms), close, then read back
//   stdout  ACK <seq> <partition> <offset>     a send acknowledged (callback, no exception)
//           FAIL <seq> <exception>             a send failed (callback exception)
//           PRODUCED sent=<n>                  after flush + close
//           END <partition> <end offset>       the consumer's endOffsets
//           READ <partition> <offset> <seq>    every record read back, in fetch order
//           RESULT ok                          done (exit 0)
//
// The read-back is a KafkaConsumer without group.id (assign + seekToBeginning) that
// polls until every partition's position reaches its end offset. The Python side
// checks the acknowledgements against what was read. <max-seconds> bounds the
// production phase in case the test never sends STOP.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class JavaFailoverClient {
    // Callbacks run on the producer's I/O thread, the stdin reader on its own: one lock for stdout.
    static final PrintStream OUT = new PrintStream(System.out, false, StandardCharsets.UTF_8);

    static void emit(String line) {
        synchronized (OUT) {
            OUT.println(line);
            OUT.flush();
        }
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int partitions = Integer.parseInt(args[2]);
        double rate = Double.parseDouble(args[3]);
        long maxNanos = (long) (Double.parseDouble(args[4]) * 1e9);

        AtomicLong nextSeq = new AtomicLong();
        AtomicBoolean stop = new AtomicBoolean();
        Object markLock = new Object(); // a MARK answer names a seq no earlier send can take
        Thread stdin = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null) {
                    if (line.equals("MARK")) {
                        synchronized (markLock) {
                            emit("MARK " + nextSeq.get());
                        }
                    } else if (line.equals("STOP")) {
                        break;
                    }
                }
            } catch (Exception e) {
                emit("LOG stdin: " + e);
            }
            stop.set(true); // STOP, or the test went away
        }, "stdin");
        stdin.setDaemon(true);
        stdin.start();

        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        // Idempotence, acks=all and unbounded retries are the defaults; only the total
        // time a record may spend retrying is shortened, to stay inside the test's budget.
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p);
        long t0 = System.nanoTime();
        long intervalNanos = (long) (1e9 / rate);
        long nextAt = t0;
        while (!stop.get() && System.nanoTime() - t0 < maxNanos) {
            long now = System.nanoTime();
            if (now < nextAt) {
                Thread.sleep(Math.max(1, (nextAt - now) / 1_000_000));
                continue;
            }
            synchronized (markLock) {
                long seq = nextSeq.getAndIncrement();
                int partition = (int) (seq % partitions);
                // send() blocks at most max.block.ms (60 s) for metadata or buffer space.
                byte[] value = Long.toString(seq).getBytes(StandardCharsets.UTF_8);
                producer.send(new ProducerRecord<>(topic, partition, null, value), (md, e) -> {
                    if (e == null) {
                        emit("ACK " + seq + " " + md.partition() + " " + md.offset());
                    } else {
                        String why = String.valueOf(e.getMessage()).replace('\n', ' ');
                        emit("FAIL " + seq + " " + e.getClass().getName() + ": " + why);
                    }
                });
            }
            nextAt += intervalNanos;
        }
        producer.flush();
        producer.close(Duration.ofSeconds(30));
        emit("PRODUCED sent=" + nextSeq.get());

        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false); // no group.id: assign only
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        c.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 100);
        c.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        c.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(c)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < partitions; i++) tps.add(new TopicPartition(topic, i));
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            Map<TopicPartition, Long> end = consumer.endOffsets(tps, Duration.ofSeconds(30));
            for (TopicPartition tp : tps) emit("END " + tp.partition() + " " + end.get(tp));
            long deadline = System.nanoTime() + 60_000_000_000L;
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps) done &= consumer.position(tp, Duration.ofSeconds(30)) >= end.get(tp);
                if (done) break;
                if (System.nanoTime() > deadline) {
                    StringBuilder pos = new StringBuilder();
                    for (TopicPartition tp : tps) {
                        pos.append(tp.partition()).append('=').append(consumer.position(tp)).append(' ');
                    }
                    throw new AssertionError("timed out reading back: positions " + pos + "end offsets " + end);
                }
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    String value = new String(r.value(), StandardCharsets.UTF_8);
                    emit("READ " + r.partition() + " " + r.offset() + " " + value);
                }
            }
        }
        emit("RESULT ok");
        System.exit(0);
    }
}
