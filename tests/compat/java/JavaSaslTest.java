// Apache Kafka Java client (3.9) over SASL_PLAINTEXT against Gregor, for
// tests/compat/test_sasl.py:
//
//   java -cp <kafka-clients jars> JavaSaslTest <bootstrap> <topic> <mechanism> <user> <password> [fail]
//
// With the right password: an admin client creates the topic, a producer
// writes 20 records (acks=all), a consumer reads them back in order. With
// `fail` as the sixth argument it expects the admin client to fail with a
// SaslAuthenticationException whose message is the broker's. Prints
// `RESULT ok` on success, exits non-zero with a message on the first failure.
import java.time.Duration;
import java.util.*;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class JavaSaslTest extends TestSupport {
    static Properties sasl(String bootstrap, String mechanism, String user, String password) {
        Properties p = new Properties();
        p.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_PLAINTEXT");
        p.put(SaslConfigs.SASL_MECHANISM, mechanism);
        String module = mechanism.equals("PLAIN")
            ? "org.apache.kafka.common.security.plain.PlainLoginModule"
            : "org.apache.kafka.common.security.scram.ScramLoginModule";
        p.put(SaslConfigs.SASL_JAAS_CONFIG,
            module + " required username=\"" + user + "\" password=\"" + password + "\";");
        return p;
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], mechanism = args[2], user = args[3], password = args[4];
        boolean expectFailure = args.length > 5 && args[5].equals("fail");

        Properties a = sasl(bootstrap, mechanism, user, password);
        a.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "20000");
        a.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "40000");
        try (Admin admin = Admin.create(a)) {
            try {
                admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get();
                check(!expectFailure, "authenticated with a wrong password");
            } catch (ExecutionException e) {
                check(expectFailure, "createTopics failed: " + e.getCause());
                check(e.getCause() instanceof SaslAuthenticationException,
                    "expected SaslAuthenticationException, got " + e.getCause());
                check(e.getCause().getMessage().contains("Authentication failed"),
                    "message: " + e.getCause().getMessage());
                System.out.println("RESULT ok");
                return;
            }
        }

        Properties p = sasl(bootstrap, mechanism, user, password);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<String, String> prod = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < 20; i++) {
                prod.send(new ProducerRecord<>(topic, 0, "k" + i, "v" + i)).get();
            }
        }

        Properties c = sasl(bootstrap, mechanism, user, password);
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        List<String> got = new ArrayList<>();
        try (KafkaConsumer<String, String> cons = new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer())) {
            TopicPartition tp = new TopicPartition(topic, 0);
            cons.assign(List.of(tp));
            cons.seekToBeginning(List.of(tp));
            long deadline = System.currentTimeMillis() + 60_000;
            while (got.size() < 20 && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : cons.poll(Duration.ofMillis(500))) {
                    check(r.offset() == got.size(), "offset " + r.offset() + " after " + got.size() + " records");
                    got.add(r.value());
                }
            }
        }
        check(got.size() == 20, "consumed " + got.size() + " of 20 records");
        for (int i = 0; i < 20; i++) {
            check(("v" + i).equals(got.get(i)), "value " + got.get(i) + " at " + i);
        }
        System.out.println("RESULT ok");
    }
}
