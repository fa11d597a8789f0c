// Apache Kafka Java client (3.9) AdminClient against Gregor's one-node answers to
// the cluster admin APIs, for tests/compat/test_cluster_admin.py:
//
//   java -cp <kafka-clients jars> JavaClusterAdminTest.java <bootstrap> <topic> <node-id>
//
// describeMetadataQuorum (DescribeQuorum): this node leads, is the only voter, no
// observers, high watermark = its log end. electLeaders (ElectLeaders): preferred and
// unclean elections are not needed; an unknown partition fails. alterPartitionReassignments
// to this node completes, to an unknown broker fails with InvalidReplicaAssignmentException,
// a cancel fails with NoReassignmentInProgressException; listPartitionReassignments is
// empty. listClientMetricsResources (ListConfigResources v0) is empty. describeProducers
// (DescribeProducers) lists an idempotent producer's state. Exits non-zero with a message on the first failure, prints `RESULT ok` on success.
import java.util.*;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ElectionNotNeededException;
import org.apache.kafka.common.errors.InvalidReplicaAssignmentException;
import org.apache.kafka.common.errors.NoReassignmentInProgressException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

public class JavaClusterAdminTest extends TestSupport {
    interface Call { void run() throws Exception; }

    static Throwable failure(Call c) {
        try {
            c.run();
            return null;
        } catch (ExecutionException e) {
            return e.getCause();
        } catch (Exception e) {
            return e;
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
            admin.createTopics(List.of(new NewTopic(topic, 2, (short) 1))).all().get();

            QuorumInfo q = admin.describeMetadataQuorum().quorumInfo().get();
            checkEq(node, q.leaderId(), "quorum leader");
            checkEq(0L, q.leaderEpoch(), "quorum leader epoch");
            checkEq(1, q.voters().size(), "voters");
            checkEq(0, q.observers().size(), "observers");
            QuorumInfo.ReplicaState v = q.voters().get(0);
            checkEq(node, v.replicaId(), "voter id");
            checkEq(q.highWatermark(), v.logEndOffset(), "voter log end = high watermark");
            check(q.highWatermark() >= 3, "high watermark " + q.highWatermark());
            check(v.lastFetchTimestamp().isPresent() && v.lastFetchTimestamp().getAsLong() > 1_600_000_000_000L,
                "last fetch timestamp " + v.lastFetchTimestamp());
            checkEq(v.lastFetchTimestamp(), v.lastCaughtUpTimestamp(), "last caught-up timestamp");

            TopicPartition tp0 = new TopicPartition(topic, 0), tp1 = new TopicPartition(topic, 1);
            TopicPartition missing = new TopicPartition(topic, 9);
            for (ElectionType type : ElectionType.values()) {
                Map<TopicPartition, Optional<Throwable>> r =
                    admin.electLeaders(type, Set.of(tp0, tp1, missing)).partitions().get();
                checkEq(3, r.size(), type + " results");
                check(r.get(tp0).orElse(null) instanceof ElectionNotNeededException, type + " tp0: " + r.get(tp0));
                check(r.get(tp1).orElse(null) instanceof ElectionNotNeededException, type + " tp1: " + r.get(tp1));
                check(r.get(missing).orElse(null) instanceof UnknownTopicOrPartitionException,
                    type + " missing: " + r.get(missing));
                // All partitions: none needed an election, none is reported.
                checkEq(Map.of(), admin.electLeaders(type, null).partitions().get(), type + " all");
            }

            admin.alterPartitionReassignments(
                Map.of(tp0, Optional.of(new NewPartitionReassignment(List.of(node))))).all().get();
            Throwable e = failure(() -> admin.alterPartitionReassignments(
                Map.of(tp1, Optional.of(new NewPartitionReassignment(List.of(node + 100))))).all().get());
            check(e instanceof InvalidReplicaAssignmentException, "unknown broker: " + e);
            check(e.getMessage().contains("no such broker is registered"), "unknown broker message: " + e);
            e = failure(() -> admin.alterPartitionReassignments(Map.of(tp1, Optional.empty())).all().get());
            check(e instanceof NoReassignmentInProgressException, "cancel: " + e);
            checkEq(Map.of(), admin.listPartitionReassignments().reassignments().get(), "all reassignments");
            checkEq(Map.of(), admin.listPartitionReassignments(Set.of(tp0, tp1)).reassignments().get(),
                "named reassignments");

            // ListClientMetricsResources (ListConfigResources v0): Gregor has no
            // client-metrics subscriptions.
            checkEq(0, admin.listClientMetricsResources().all().get().size(), "client metrics resources");

            // DescribeProducers (KIP-664): an idempotent producer's 5 records in
            // partition 1 leave one producer with last sequence 4; partition 0
            // (no idempotent writes) has none. (For a partition missing from the
            // metadata the Java client waits for a leader until its timeout, on any
            // broker: not exercised here; the error code is tested over the wire.)
            Properties pp = new Properties();
            pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
            pp.put(ProducerConfig.LINGER_MS_CONFIG, "0");
            long producerId;
            try (KafkaProducer<String, String> prod = new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer())) {
                for (int i = 0; i < 5; i++) prod.send(new ProducerRecord<>(topic, 1, null, "p" + i)).get();
            }
            DescribeProducersResult.PartitionProducerState ps = admin.describeProducers(List.of(tp1)).partitionResult(tp1).get();
            checkEq(1, ps.activeProducers().size(), "active producers of " + tp1);
            ProducerState state = ps.activeProducers().get(0);
            checkEq(4, state.lastSequence(), "last sequence");
            checkEq(0, state.producerEpoch(), "producer epoch");
            check(state.producerId() >= 0, "producer id " + state.producerId());
            check(state.lastTimestamp() > 1_600_000_000_000L, "last timestamp " + state.lastTimestamp());
            check(!state.coordinatorEpoch().isPresent(), "coordinator epoch " + state.coordinatorEpoch());
            check(!state.currentTransactionStartOffset().isPresent(), "txn start " + state.currentTransactionStartOffset());
            checkEq(0, admin.describeProducers(List.of(tp0)).partitionResult(tp0).get().activeProducers().size(),
                "active producers of " + tp0);
        }
        System.out.println("RESULT ok");
    }
}
