import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;

/**
 * What the Java compat tests share: checks that fail the run, a wait with a
 * deadline, and an Admin client. compat_util.compile_java compiles it beside
 * each test, and each test class extends it so the helpers read as its own.
 * A failed check throws: in main it ends the run with exit code 1 (and no
 * "RESULT ok"); in a worker thread the test hands it back to main.
 */
public class TestSupport {
    /** How long a wait may take unless the caller names a time. */
    static final long WAIT_S = 30;

    static void check(boolean cond, String msg) {
        if (!cond) throw new AssertionError(msg);
    }

    static void checkEq(Object want, Object got, String what) {
        if (!Objects.equals(want, got)) throw new AssertionError(what + ": expected <" + want + "> but got <" + got + ">");
    }

    interface Cond { boolean get() throws Exception; }

    static void waitUntil(Cond c, String what) throws Exception {
        waitUntil(WAIT_S, c, what);
    }

    /** Polls `c` every 100 ms until it holds; an exception it throws counts as not yet. */
    static void waitUntil(long seconds, Cond c, String what) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        Exception last = null;
        while (true) {
            try {
                if (c.get()) return;
            } catch (Exception e) {
                last = e;
            }
            if (System.nanoTime() > deadline) throw new AssertionError("timed out waiting for " + what + (last != null ? ": " + last : ""));
            Thread.sleep(100);
        }
    }

    static Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 30000);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60000);
        return Admin.create(p);
    }

    /** Creates a topic (replication factor 1) and waits until Metadata shows all its partitions. */
    static void createTopic(String bootstrap, String name, int partitions, Map<String, String> configs) throws Exception {
        try (Admin a = admin(bootstrap)) {
            a.createTopics(List.of(new NewTopic(name, partitions, (short) 1).configs(configs))).all().get(WAIT_S, TimeUnit.SECONDS);
            waitUntil(() -> a.describeTopics(List.of(name)).allTopicNames().get(WAIT_S, TimeUnit.SECONDS)
                .get(name).partitions().size() == partitions, "topic " + name + " with " + partitions + " partitions");
        }
    }
}
