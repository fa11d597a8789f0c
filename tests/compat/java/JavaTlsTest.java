// Apache Kafka Java client (3.9) over TLS against Gregor's SSL listener, for
// tests/compat/test_tls.py:
//
//   java -cp <kafka-clients jars> JavaTlsTest.java <bootstrap> <topic> <ca.pem> [<client keystore.pem>]
//
// The client trusts the test CA through a PEM truststore (ssl.truststore.type=PEM)
// and verifies the broker's hostname (ssl.endpoint.identification.algorithm=https,
// Kafka's default: the broker certificate names 127.0.0.1). With a fourth
// argument it presents a client certificate from a PEM keystore (mTLS). An admin
// client creates the topic and checks that every broker it sees is at the SSL
// port it bootstrapped from; a producer writes 50 records (acks=all); a consumer
// reads them back in order. Exits non-zero with a message on the first failure,
// prints `RESULT ok` on success.
import java.time.Duration;
import java.util.*;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class JavaTlsTest extends TestSupport {
    static Properties tls(String bootstrap, String ca, String keystore) {
        Properties p = new Properties();
        p.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SSL");
        p.put(SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM");
        p.put(SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, ca);
        if (keystore != null) {
            p.put(SslConfigs.SSL_KEYSTORE_TYPE_CONFIG, "PEM");
            p.put(SslConfigs.SSL_KEYSTORE_LOCATION_CONFIG, keystore);
        }
        return p;
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], ca = args[2];
        String keystore = args.length > 3 ? args[3] : null;
        int sslPort = Integer.parseInt(bootstrap.substring(bootstrap.lastIndexOf(':') + 1));

        Properties a = tls(bootstrap, ca, keystore);
        a.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "20000");
        a.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "40000");
        try (Admin admin = Admin.create(a)) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get();
            Collection<Node> nodes = admin.describeCluster().nodes().get();
            check(!nodes.isEmpty(), "no broker described");
            for (Node n : nodes) {
                check(n.port() == sslPort, "broker " + n + " is not at the SSL port " + sslPort);
            }
        }

        Properties p = tls(bootstrap, ca, keystore);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<String, String> prod = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < 50; i++) {
                prod.send(new ProducerRecord<>(topic, 0, "k" + i, "v" + i)).get();
            }
        }

        Properties c = tls(bootstrap, ca, keystore);
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        List<String> got = new ArrayList<>();
        try (KafkaConsumer<String, String> cons = new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer())) {
            TopicPartition tp = new TopicPartition(topic, 0);
            cons.assign(List.of(tp));
            cons.seekToBeginning(List.of(tp));
            long deadline = System.currentTimeMillis() + 60_000;
            while (got.size() < 50 && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : cons.poll(Duration.ofMillis(500))) {
                    check(r.offset() == got.size(), "offset " + r.offset() + " after " + got.size() + " records");
                    check(("k" + got.size()).equals(r.key()), "key " + r.key() + " at " + r.offset());
                    got.add(r.value());
                }
            }
        }
        check(got.size() == 50, "consumed " + got.size() + " of 50 records");
        for (int i = 0; i < 50; i++) {
            check(("v" + i).equals(got.get(i)), "value " + got.get(i) + " at " + i);
        }
        System.out.println("RESULT ok");
    }
}
