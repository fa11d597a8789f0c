// Apache Kafka Java client (3.9) AdminClient managing users' SCRAM
// credentials on Gregor (KIP-554), for tests/compat/test_scram_credentials.py:
//
//   java -cp <kafka-clients jars> JavaScramAdminTest.java <bootstrap>
//
// alterUserScramCredentials upserts two users (the Java client hashes the
// password itself: ScramFormatter's salted password), describe shows their
// mechanisms and iterations, an unknown user is ResourceNotFoundException and
// missing from users(), too few iterations is UnacceptableCredentialException,
// a deletion removes one mechanism. Exits non-zero with a message on the first
// failure, prints `RESULT ok` on success.
import java.util.*;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.errors.ResourceNotFoundException;
import org.apache.kafka.common.errors.UnacceptableCredentialException;

public class JavaScramAdminTest extends TestSupport {
    static String infos(UserScramCredentialsDescription d) {
        List<String> out = new ArrayList<>();
        for (ScramCredentialInfo i : d.credentialInfos()) {
            out.add(i.mechanism().mechanismName() + "=" + i.iterations());
        }
        Collections.sort(out);
        return String.join(",", out);
    }

    static Throwable cause(KafkaFutureLike f) {
        try {
            f.get();
            return null;
        } catch (ExecutionException e) {
            return e.getCause();
        } catch (InterruptedException e) {
            return e;
        }
    }

    interface KafkaFutureLike {
        Object get() throws InterruptedException, ExecutionException;
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "20000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "40000");
        try (Admin admin = Admin.create(p)) {
            admin.alterUserScramCredentials(List.of(
                new UserScramCredentialUpsertion("jalice",
                    new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), "alice-secret"),
                new UserScramCredentialUpsertion("jbob",
                    new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), "bob-secret")
            )).all().get();
            admin.alterUserScramCredentials(List.of(
                new UserScramCredentialUpsertion("jalice",
                    new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 10000), "alice-secret")
            )).all().get();

            Map<String, UserScramCredentialsDescription> all = admin.describeUserScramCredentials().all().get();
            check(all.keySet().equals(Set.of("jalice", "jbob")), "users: " + all.keySet());
            check(infos(all.get("jalice")).equals("SCRAM-SHA-256=8192,SCRAM-SHA-512=10000"),
                "jalice: " + infos(all.get("jalice")));
            check(infos(all.get("jbob")).equals("SCRAM-SHA-512=4096"), "jbob: " + infos(all.get("jbob")));

            DescribeUserScramCredentialsResult some = admin.describeUserScramCredentials(List.of("jbob", "nobody"));
            check(some.users().get().equals(List.of("jbob")), "users() of jbob+nobody: " + some.users().get());
            Throwable t = cause(() -> some.description("nobody").get());
            check(t instanceof ResourceNotFoundException, "describe nobody: " + t);

            AlterUserScramCredentialsResult bad = admin.alterUserScramCredentials(List.of(
                new UserScramCredentialUpsertion("jcarol",
                    new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 1000), "x")));
            t = cause(() -> bad.values().get("jcarol").get());
            check(t instanceof UnacceptableCredentialException, "too few iterations: " + t);

            admin.alterUserScramCredentials(List.of(
                new UserScramCredentialDeletion("jalice", ScramMechanism.SCRAM_SHA_256))).all().get();
            all = admin.describeUserScramCredentials(List.of("jalice")).all().get();
            check(infos(all.get("jalice")).equals("SCRAM-SHA-512=10000"), "after delete: " + infos(all.get("jalice")));
        }
        System.out.println("RESULT ok");
    }
}
