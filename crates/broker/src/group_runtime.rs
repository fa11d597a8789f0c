//! The group coordinator on the shared [`CoordinatorRuntime`]: one
//! [`GroupCoordinatorShard`] per `__consumer_offsets` partition.

use std::sync::{Arc, Weak};

use gregor_coordinator::shard::ClientInfo;
use gregor_coordinator::{
    BatchContext, GroupConfig, GroupCoordinatorShard, Output, Rebalance, Response, TimerKey,
    TopicMeta, TopicsView,
};
use gregor_metadata::{MetadataImage, TopicImage};
use gregor_records::{BatchHeader, Record};

use crate::broker::Broker;
use crate::coordinator_runtime::{
    CoordinatorError, CoordinatorRuntime, CoordinatorShard, Effects, EffectsOf, InternalTopic,
    TimerOp,
};

/// Name of the offsets topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

pub type GroupRuntime = CoordinatorRuntime<GroupCoordinatorShard>;
pub type GroupError = CoordinatorError;

/// The group coordinator's runtime over `num_partitions` partitions of
/// `__consumer_offsets` (`offsets.topic.num.partitions`), created on first
/// use with `offsets.topic.replication.factor`, compacted.
pub fn group_runtime(
    broker: Weak<Broker>,
    config: GroupConfig,
    num_partitions: i32,
) -> GroupRuntime {
    let topic = InternalTopic {
        name: OFFSETS_TOPIC,
        partitions: num_partitions,
        replication_factor_key: "offsets.topic.replication.factor",
        min_isr_key: None,
        configs: vec![
            ("cleanup.policy", "compact".into()),
            ("segment.bytes", "104857600".into()),
            ("compression.type", "producer".into()),
        ],
    };
    CoordinatorRuntime::new(
        broker,
        topic,
        move |partition, _epoch| GroupCoordinatorShard::new(partition, config.clone()),
        |broker, _, rebalances: Vec<Rebalance>| {
            for r in rebalances {
                match r {
                    Rebalance::Classic => broker.metrics.classic_rebalances.inc(),
                    Rebalance::Consumer => broker.metrics.consumer_rebalances.inc(),
                }
            }
        },
    )
}

impl From<Output> for Effects<Response, TimerKey, Rebalance> {
    fn from(out: Output) -> Self {
        Effects {
            records: out.records,
            producer: out.producer,
            responses: out.responses,
            timers: out
                .timers
                .into_iter()
                .map(|op| match op {
                    gregor_coordinator::TimerOp::Schedule { key, deadline_ms } => {
                        TimerOp::Schedule { key, deadline_ms }
                    }
                    gregor_coordinator::TimerOp::Cancel { key } => TimerOp::Cancel { key },
                })
                .collect(),
            notices: out.rebalances,
        }
    }
}

impl CoordinatorShard for GroupCoordinatorShard {
    type Response = Response;
    type Timer = TimerKey;
    type Notice = Rebalance;

    fn replay_batch(&mut self, header: &BatchHeader, records: Vec<Record>) {
        // Control batches too: a COMMIT or ABORT marker decides the
        // producer's pending transactional offsets.
        let ctx = BatchContext {
            producer_id: header.producer_id,
            transactional: header.is_transactional(),
            control: header.is_control(),
        };
        for r in records {
            let Some(key) = r.key else { continue };
            self.replay_record(ctx, &key, r.value.as_deref(), r.offset);
        }
    }

    fn loaded(&mut self, now_ms: i64) -> EffectsOf<Self> {
        GroupCoordinatorShard::loaded(self, now_ms).into()
    }

    fn on_timer(&mut self, now_ms: i64, key: TimerKey) -> EffectsOf<Self> {
        GroupCoordinatorShard::on_timer(self, now_ms, key).into()
    }
}

/// The broker's metadata image as the coordinator's [`TopicsView`]: the
/// consumer-protocol assignors read topic ids and partition counts from it.
pub struct ImageTopics(pub Arc<MetadataImage>);

fn topic_meta(t: &TopicImage) -> TopicMeta {
    TopicMeta {
        name: t.name.clone(),
        id: t.topic_id,
        partitions: i32::try_from(t.partitions.len()).unwrap_or(i32::MAX),
    }
}

impl TopicsView for ImageTopics {
    fn by_name(&self, name: &str) -> Option<TopicMeta> {
        self.0.topic(name).map(topic_meta)
    }
    fn by_id(&self, id: uuid::Uuid) -> Option<TopicMeta> {
        self.0.topic_by_id(&id).map(topic_meta)
    }
}

/// Client id and host of a request, for JoinGroup and DescribeGroups.
pub fn client_info(client_id: Option<&str>, peer: Option<std::net::SocketAddr>) -> ClientInfo {
    ClientInfo {
        client_id: client_id.unwrap_or("").to_string(),
        client_host: peer.map(|p| format!("/{}", p.ip())).unwrap_or_default(),
    }
}
