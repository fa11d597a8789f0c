// Apache Kafka Java client (3.9) AdminClient moving a replica between the log
// dirs of one Gregor broker, for tests/compat/test_log_dirs.py:
//
//   java -cp <kafka-clients jars> JavaLogDirsTest.java <bootstrap> <topic> <node-id>
//
// The broker has two log dirs. 200 records are produced; describeLogDirs names
// the dir holding the partition; alterReplicaLogDirs (AlterReplicaLogDirs v2)
// moves it to the other dir while 200 more are produced; describeReplicaLogDirs
// shows it there with no future replica left; all 400 records are consumed back
// in order. Moving to a dir that is not a log dir fails with
// LogDirNotFoundException. Exits non-zero with a message on the first failure,
// prints `RESULT ok` on success.
import java.time.Duration;
import java.util.*;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionReplica;
import org.apache.kafka.common.errors.LogDirNotFoundException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class JavaLogDirsTest extends TestSupport {
    static void produce(String bootstrap, String topic, int from, int n) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<String, String> prod = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            for (int i = from; i < from + n; i++) {
                prod.send(new ProducerRecord<>(topic, 0, null, "v" + i)).get();
            }
        }
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1];
        int node = Integer.parseInt(args[2]);
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "20000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "40000");
        try (Admin admin = Admin.create(p)) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get();
            produce(bootstrap, topic, 0, 200);

            Map<String, LogDirDescription> dirs = admin.describeLogDirs(List.of(node)).allDescriptions().get().get(node);
            check(dirs.size() == 2, "two log dirs expected, got " + dirs.keySet());
            TopicPartition tp = new TopicPartition(topic, 0);
            String from = null, to = null;
            for (Map.Entry<String, LogDirDescription> e : dirs.entrySet()) {
                if (e.getValue().replicaInfos().containsKey(tp)) from = e.getKey(); else to = e.getKey();
            }
            check(from != null && to != null, "partition in exactly one dir: " + dirs);

            TopicPartitionReplica tpr = new TopicPartitionReplica(topic, 0, node);
            try {
                admin.alterReplicaLogDirs(Map.of(tpr, to + "-not-a-log-dir")).all().get();
                check(false, "moving to a dir that is not a log dir succeeded");
            } catch (ExecutionException e) {
                check(e.getCause() instanceof LogDirNotFoundException, "want LogDirNotFoundException, got " + e.getCause());
            }

            admin.alterReplicaLogDirs(Map.of(tpr, to)).all().get();
            produce(bootstrap, topic, 200, 200);
            long deadline = System.currentTimeMillis() + 30_000;
            while (true) {
                DescribeReplicaLogDirsResult.ReplicaLogDirInfo info =
                    admin.describeReplicaLogDirs(List.of(tpr)).all().get().get(tpr);
                if (to.equals(info.getCurrentReplicaLogDir()) && info.getFutureReplicaLogDir() == null) break;
                check(System.currentTimeMillis() < deadline, "not moved to " + to + " within 30 s: " + info);
                Thread.sleep(50);
            }

            Properties c = new Properties();
            c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            try (KafkaConsumer<String, String> cons = new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer())) {
                cons.assign(List.of(tp));
                cons.seekToBeginning(List.of(tp));
                List<String> got = new ArrayList<>();
                long until = System.currentTimeMillis() + 30_000;
                while (got.size() < 400 && System.currentTimeMillis() < until) {
                    for (ConsumerRecord<String, String> r : cons.poll(Duration.ofMillis(500))) {
                        check(r.offset() == got.size(), "offset " + r.offset() + " after " + got.size() + " records");
                        got.add(r.value());
                    }
                }
                check(got.size() == 400, "read " + got.size() + " of 400 records");
                for (int i = 0; i < 400; i++) check(got.get(i).equals("v" + i), "record " + i + " is " + got.get(i));
            }
        }
        System.out.println("RESULT ok");
    }
}
