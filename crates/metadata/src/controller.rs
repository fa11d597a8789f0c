//! The controller's decisions: an image and a request in, the records that
//! carry out the request (or why not) out. The runtime appends the records to
//! the metadata log and applies them to the image; nothing here does I/O.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::config_defs::{self, ConfigSource, InvalidConfig};
use crate::{ConfigResource, MetadataImage, MetadataRecord};

/// Why the controller refused; the broker maps each to a Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    #[error("Topic '{0}' already exists.")]
    TopicAlreadyExists(String),
    #[error("Topic '{0}' does not exist.")]
    UnknownTopic(String),
    #[error("Topic id {0} does not exist.")]
    UnknownTopicId(Uuid),
    #[error("{0}")]
    InvalidTopic(String),
    #[error("Number of partitions must be larger than 0 (got {0}).")]
    InvalidPartitions(i32),
    #[error(
        "Topic currently has {current} partitions, which is higher than the requested {requested}."
    )]
    CannotShrinkPartitions { current: i32, requested: i32 },
    #[error("Topic {topic} already has {count} partitions.")]
    SamePartitionCount { topic: String, count: i32 },
    #[error("Replication factor: {requested} larger than available brokers: {available}.")]
    InvalidReplicationFactor { requested: i32, available: usize },
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error(transparent)]
    InvalidConfig(#[from] InvalidConfig),
    #[error("Unknown topic config name: {0}")]
    UnknownConfig(String),
    /// POLICY_VIOLATION: more partitions in one request than
    /// [`MAX_PARTITIONS_PER_BATCH`].
    #[error("Excessively large number of partitions per request.")]
    TooManyPartitions,
    /// POLICY_VIOLATION: the change would need more records than
    /// [`MAX_RECORDS_PER_USER_OP`](crate::transaction::MAX_RECORDS_PER_USER_OP)
    /// (Kafka's `BoundedListTooLongException`, with Kafka's message).
    #[error("Unable to perform excessively large batch operation.")]
    ExcessivelyLargeBatch,
}

/// Refuses a change of more than
/// [`MAX_RECORDS_PER_USER_OP`](crate::transaction::MAX_RECORDS_PER_USER_OP)
/// records, before it is written.
pub fn bounded(records: Vec<MetadataRecord>) -> Result<Vec<MetadataRecord>, ControllerError> {
    if records.len() > crate::transaction::MAX_RECORDS_PER_USER_OP {
        return Err(ControllerError::ExcessivelyLargeBatch);
    }
    Ok(records)
}

/// The most partitions one CreateTopics or CreatePartitions request may
/// create (Kafka's `MAX_PARTITIONS_PER_BATCH`, the controller's records per
/// user operation): a request asking for 2^31 partitions is refused before
/// any record is built.
pub const MAX_PARTITIONS_PER_BATCH: i64 = 10_000;

/// Longest legal topic name (Kafka: 249 so partition directory names fit 255).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Kafka's topic name rules: `[a-zA-Z0-9._-]{1,249}`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    if name.is_empty() {
        return Err(ControllerError::InvalidTopic(
            "Topic name is illegal, it can't be empty".into(),
        ));
    }
    if name == "." || name == ".." {
        return Err(ControllerError::InvalidTopic(
            "Topic name cannot be \".\" or \"..\"".into(),
        ));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LEN} characters, topic name: {name}"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        )));
    }
    Ok(())
}

/// A CreateTopics entry, with defaults already applied by the caller.
#[derive(Debug, Clone)]
pub struct CreateTopic {
    pub name: String,
    pub num_partitions: i32,
    pub replication_factor: i32,
    /// Manual assignment: partition → replicas (overrides the two counts).
    pub assignments: BTreeMap<i32, Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

impl CreateTopic {
    pub fn new(name: &str, num_partitions: i32) -> Self {
        Self {
            name: name.to_string(),
            num_partitions,
            replication_factor: 1,
            assignments: BTreeMap::new(),
            configs: BTreeMap::new(),
        }
    }
}

/// Validates topic config overrides (names and values).
pub fn validate_topic_configs(configs: &BTreeMap<String, String>) -> Result<(), ControllerError> {
    for (name, value) in configs {
        let def = config_defs::topic_config(name)
            .ok_or_else(|| ControllerError::UnknownConfig(name.clone()))?;
        config_defs::validate(name, def.ty, def.validator, value)?;
    }
    Ok(())
}

/// Round-robin replica placement starting at a partition-dependent broker, as
/// Kafka's rack-unaware assignment does (enough for a cluster without racks).
fn assign_replicas(brokers: &[i32], partition: i32, rf: usize) -> Vec<i32> {
    let n = brokers.len();
    (0..rf)
        .map(|i| brokers[(partition as usize + i) % n])
        .collect()
}

pub fn create_topic(
    image: &MetadataImage,
    req: &CreateTopic,
    brokers: &[i32],
    topic_id: Uuid,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    validate_topic_name(&req.name)?;
    if image.topic(&req.name).is_some() {
        return Err(ControllerError::TopicAlreadyExists(req.name.clone()));
    }
    // Kafka forbids names that collide once '.' and '_' are treated alike (metric names).
    let normalized = req.name.replace('.', "_");
    if let Some(t) = image
        .topics()
        .find(|t| t.name.replace('.', "_") == normalized)
    {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic '{}' collides with existing topic: {}",
            req.name, t.name
        )));
    }
    validate_topic_configs(&req.configs)?;
    let assignments: Vec<(i32, Vec<i32>)> = if req.assignments.is_empty() {
        if req.num_partitions <= 0 {
            return Err(ControllerError::InvalidPartitions(req.num_partitions));
        }
        if i64::from(req.num_partitions) > MAX_PARTITIONS_PER_BATCH {
            return Err(ControllerError::TooManyPartitions);
        }
        if req.replication_factor <= 0 || req.replication_factor as usize > brokers.len() {
            return Err(ControllerError::InvalidReplicationFactor {
                requested: req.replication_factor,
                available: brokers.len(),
            });
        }
        (0..req.num_partitions)
            .map(|p| {
                (
                    p,
                    assign_replicas(brokers, p, req.replication_factor as usize),
                )
            })
            .collect()
    } else {
        if req.assignments.len() as i64 > MAX_PARTITIONS_PER_BATCH {
            return Err(ControllerError::TooManyPartitions);
        }
        let mut out = Vec::new();
        for (i, (p, replicas)) in req.assignments.iter().enumerate() {
            if *p != i as i32 {
                return Err(ControllerError::InvalidReplicaAssignment(
                    "Partitions must be numbered consecutively from 0".into(),
                ));
            }
            validate_replicas(replicas, brokers)?;
            out.push((*p, replicas.clone()));
        }
        out
    };
    let mut records = vec![MetadataRecord::Topic {
        name: req.name.clone(),
        topic_id,
    }];
    for (partition, replicas) in assignments {
        records.push(partition_record(topic_id, partition, replicas));
    }
    for (name, value) in &req.configs {
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Topic(req.name.clone()),
            name: name.clone(),
            value: Some(value.clone()),
        });
    }
    bounded(records)
}

fn validate_replicas(replicas: &[i32], brokers: &[i32]) -> Result<(), ControllerError> {
    if replicas.is_empty() {
        return Err(ControllerError::InvalidReplicaAssignment(
            "Empty replica list".into(),
        ));
    }
    for (i, r) in replicas.iter().enumerate() {
        if !brokers.contains(r) {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "Broker {r} does not exist"
            )));
        }
        if replicas[..i].contains(r) {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "Duplicate replica {r}"
            )));
        }
    }
    Ok(())
}

fn partition_record(topic_id: Uuid, partition: i32, replicas: Vec<i32>) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition,
        leader: replicas[0],
        isr: replicas.clone(),
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
        adding_replicas: vec![],
        removing_replicas: vec![],
    }
}

pub fn delete_topic(
    image: &MetadataImage,
    name: &str,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let topic = image
        .topic(name)
        .ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
    Ok(vec![MetadataRecord::RemoveTopic {
        topic_id: topic.topic_id,
    }])
}

/// CreatePartitions: grow `name` to `count` partitions.
pub fn create_partitions(
    image: &MetadataImage,
    name: &str,
    count: i32,
    assignments: Option<&[Vec<i32>]>,
    brokers: &[i32],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let topic = image
        .topic(name)
        .ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
    let current = topic.partitions.len() as i32;
    if count < current {
        return Err(ControllerError::CannotShrinkPartitions {
            current,
            requested: count,
        });
    }
    if count == current {
        return Err(ControllerError::SamePartitionCount {
            topic: name.to_string(),
            count,
        });
    }
    if i64::from(count) - i64::from(current) > MAX_PARTITIONS_PER_BATCH {
        return Err(ControllerError::TooManyPartitions);
    }
    let rf = topic
        .partitions
        .values()
        .next()
        .map_or(1, |p| p.replicas.len());
    if let Some(a) = assignments {
        if a.len() as i32 != count - current {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "Increasing the number of partitions by {} but {} assignments provided.",
                count - current,
                a.len()
            )));
        }
    }
    let mut records = Vec::new();
    for (i, p) in (current..count).enumerate() {
        let replicas = match assignments {
            Some(a) => {
                validate_replicas(&a[i], brokers)?;
                a[i].clone()
            }
            None => assign_replicas(brokers, p, rf.min(brokers.len()).max(1)),
        };
        records.push(partition_record(topic.topic_id, p, replicas));
    }
    bounded(records)
}

/// Why a config change was refused. Topic failures keep their
/// [`ControllerError`]; broker and group changes fail as Kafka's do, with the
/// error code each variant names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlterConfigsError {
    #[error(transparent)]
    Controller(#[from] ControllerError),
    /// INVALID_REQUEST (Kafka refuses broker config changes with it).
    #[error("{0}")]
    InvalidRequest(String),
    /// INVALID_CONFIG (group config changes).
    #[error("{0}")]
    InvalidConfig(String),
}

/// A broker config's value on this node outside the dynamic layers:
/// `server.properties` / `--override`, else Kafka's default.
pub fn static_broker_value(static_broker: &BTreeMap<String, String>, name: &str) -> Option<String> {
    static_broker.get(name).cloned().or_else(|| {
        config_defs::broker_config(name)
            .and_then(|d| d.default)
            .map(str::to_string)
    })
}

/// Config changes for one resource: `Some(value)` sets, `None` deletes.
/// `static_broker` is the node's static config (group configs are bounded
/// by its `group.*` settings).
pub fn alter_configs(
    image: &MetadataImage,
    resource: &ConfigResource,
    changes: &BTreeMap<String, Option<String>>,
    static_broker: &BTreeMap<String, String>,
) -> Result<Vec<MetadataRecord>, AlterConfigsError> {
    // The resource's configs as they would be after the change: Kafka
    // validates broker and group configs as a whole.
    let after = || {
        let mut after = image.configs(resource).cloned().unwrap_or_default();
        for (k, v) in changes {
            match v {
                Some(v) => after.insert(k.clone(), v.clone()),
                None => after.remove(k),
            };
        }
        after
    };
    match resource {
        ConfigResource::Topic(name) => {
            if image.topic(name).is_none() {
                return Err(ControllerError::UnknownTopic(name.clone()).into());
            }
            for (k, v) in changes {
                let def = config_defs::topic_config(k)
                    .ok_or_else(|| ControllerError::UnknownConfig(k.clone()))?;
                if let Some(v) = v {
                    config_defs::validate(k, def.ty, def.validator, v)
                        .map_err(ControllerError::from)?;
                }
            }
        }
        ConfigResource::Broker(id) => {
            config_defs::validate_dynamic_broker_configs(&after(), !id.is_empty())
                .map_err(|e| AlterConfigsError::InvalidRequest(e.to_string()))?;
        }
        ConfigResource::Group(group) => {
            if group.is_empty() {
                return Err(AlterConfigsError::InvalidRequest(
                    "Default group resources are not allowed.".into(),
                ));
            }
            config_defs::validate_group_configs(&after(), &|name| {
                static_broker_value(static_broker, name)
            })
            .map_err(|e| AlterConfigsError::InvalidConfig(e.to_string()))?;
        }
    }
    Ok(changes
        .iter()
        .map(|(name, value)| MetadataRecord::Config {
            resource: resource.clone(),
            name: name.clone(),
            value: value.clone(),
        })
        .collect())
}

/// Size of the producer-id block a broker takes at a time (Kafka: 1000).
pub const PRODUCER_ID_BLOCK: i64 = 1000;

pub fn allocate_producer_ids(image: &MetadataImage, broker_id: i32) -> (i64, MetadataRecord) {
    let start = image.next_producer_id;
    (
        start,
        MetadataRecord::ProducerIds {
            broker_id,
            next_producer_id: start + PRODUCER_ID_BLOCK,
        },
    )
}

/// The source Kafka reports for a config set directly on a resource.
pub fn dynamic_source(resource: &ConfigResource) -> ConfigSource {
    match resource {
        ConfigResource::Topic(_) => ConfigSource::DynamicTopic,
        ConfigResource::Broker(id) if id.is_empty() => ConfigSource::DynamicDefaultBroker,
        ConfigResource::Broker(_) => ConfigSource::DynamicBroker,
        ConfigResource::Group(_) => ConfigSource::GroupConfig,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            image.apply(r);
        }
    }

    #[test]
    fn create_validate_and_grow() {
        let mut image = MetadataImage::default();
        let recs = create_topic(
            &image,
            &CreateTopic::new("a.b", 2),
            &[1],
            Uuid::from_u128(1),
        )
        .unwrap();
        apply(&mut image, &recs);
        assert!(matches!(
            create_topic(
                &image,
                &CreateTopic::new("a.b", 1),
                &[1],
                Uuid::from_u128(2)
            ),
            Err(ControllerError::TopicAlreadyExists(_))
        ));
        assert!(matches!(
            create_topic(
                &image,
                &CreateTopic::new("a_b", 1),
                &[1],
                Uuid::from_u128(2)
            ),
            Err(ControllerError::InvalidTopic(_))
        ));
        assert!(matches!(
            create_topic(
                &image,
                &CreateTopic::new("bad/name", 1),
                &[1],
                Uuid::from_u128(2)
            ),
            Err(ControllerError::InvalidTopic(_))
        ));
        let mut rf3 = CreateTopic::new("c", 1);
        rf3.replication_factor = 3;
        assert!(matches!(
            create_topic(&image, &rf3, &[1], Uuid::from_u128(3)),
            Err(ControllerError::InvalidReplicationFactor { .. })
        ));
        let mut bad_cfg = CreateTopic::new("d", 1);
        bad_cfg.configs.insert("retention.ms".into(), "x".into());
        assert!(matches!(
            create_topic(&image, &bad_cfg, &[1], Uuid::from_u128(4)),
            Err(ControllerError::InvalidConfig(_))
        ));

        assert!(matches!(
            create_partitions(&image, "a.b", 1, None, &[1]),
            Err(ControllerError::CannotShrinkPartitions { .. })
        ));
        // 2^31 partitions: refused before a record is built (Kafka's bound).
        assert!(matches!(
            create_topic(
                &image,
                &CreateTopic::new("huge", i32::MAX),
                &[1],
                Uuid::from_u128(5)
            ),
            Err(ControllerError::TooManyPartitions)
        ));
        assert!(matches!(
            create_partitions(&image, "a.b", i32::MAX, None, &[1]),
            Err(ControllerError::TooManyPartitions)
        ));
        assert!(create_partitions(&image, "a.b", 10_002, None, &[1]).is_ok());
        let recs = create_partitions(&image, "a.b", 4, None, &[1]).unwrap();
        apply(&mut image, &recs);
        assert_eq!(image.topic("a.b").unwrap().partitions.len(), 4);

        let recs = delete_topic(&image, "a.b").unwrap();
        apply(&mut image, &recs);
        assert!(image.topic("a.b").is_none());
    }

    #[test]
    fn alter_configs_by_resource() {
        let mut image = MetadataImage::default();
        let no_static = BTreeMap::new();
        let set = |k: &str, v: &str| BTreeMap::from([(k.to_string(), Some(v.to_string()))]);
        // Broker: per-broker config on the broker, not as the cluster default.
        let broker = ConfigResource::Broker("1".into());
        let change = set("sasl.kerberos.min.time.before.relogin", "58000");
        assert!(alter_configs(&image, &broker, &change, &no_static).is_ok());
        let default = ConfigResource::Broker(String::new());
        assert!(matches!(
            alter_configs(&image, &default, &change, &no_static),
            Err(AlterConfigsError::InvalidRequest(_))
        ));
        assert!(matches!(
            alter_configs(&image, &broker, &set("node.id", "2"), &no_static),
            Err(AlterConfigsError::InvalidRequest(m)) if m == "Cannot update these configs dynamically: Set(node.id)"
        ));
        // Group: bounded by the node's group.consumer.* configs.
        let group = ConfigResource::Group("g".into());
        let change = set("consumer.session.timeout.ms", "50000");
        let recs = alter_configs(&image, &group, &change, &no_static).unwrap();
        apply(&mut image, &recs);
        assert_eq!(
            image.configs(&group).unwrap()["consumer.session.timeout.ms"],
            "50000"
        );
        assert!(matches!(
            alter_configs(
                &image,
                &group,
                &set("consumer.session.timeout.ms", "2000"),
                &no_static
            ),
            Err(AlterConfigsError::InvalidConfig(_))
        ));
        let low_min = BTreeMap::from([(
            "group.consumer.min.session.timeout.ms".to_string(),
            "1000".to_string(),
        )]);
        assert!(alter_configs(
            &image,
            &group,
            &set("consumer.session.timeout.ms", "6000"),
            &low_min
        )
        .is_ok());
        assert!(matches!(
            alter_configs(
                &image,
                &ConfigResource::Group(String::new()),
                &change,
                &no_static
            ),
            Err(AlterConfigsError::InvalidRequest(_))
        ));
        assert_eq!(dynamic_source(&group), ConfigSource::GroupConfig);
    }

    #[test]
    fn producer_id_blocks_do_not_overlap() {
        let mut image = MetadataImage::default();
        let (a, r) = allocate_producer_ids(&image, 1);
        image.apply(&r);
        let (b, _) = allocate_producer_ids(&image, 1);
        assert_eq!(a, 0);
        assert_eq!(b, PRODUCER_ID_BLOCK);
    }
}
