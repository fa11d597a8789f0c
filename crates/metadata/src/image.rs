//! The metadata image: what the cluster looks like after replaying the log.
//!
//! # Sharing between images
//!
//! An image is immutable once published (readers hold an `Arc<MetadataImage>`),
//! and every change makes the next image. To keep a change cheap the image is
//! structurally shared, as Kafka's `MetadataImage`/`MetadataDelta` are:
//!
//! ```text
//! MetadataImage ──Arc──▶ topics:  BTreeMap<name, Arc<TopicImage>>
//!               ──Arc──▶ topic_names: HashMap<id, name>
//!               ──Arc──▶ configs: BTreeMap<resource, Arc<BTreeMap<name, value>>>
//!               ──Arc──▶ brokers: BTreeMap<id, BrokerImage>
//!               ──Arc──▶ scram: BTreeMap<user, BTreeMap<mechanism, ScramCredentialImage>>
//!               ──Arc──▶ acls: BTreeMap<id, AclBinding>
//!               ──Arc──▶ client_quotas: BTreeMap<entity, BTreeMap<key, value>>
//! ```
//!
//! Cloning an image copies seven pointers. [`MetadataImage::apply`] then
//! copies on write ([`Arc::make_mut`]) only what a record touches: creating a
//! partition copies that topic and the top-level map of `Arc`s (pointer
//! copies), never the other topics, their partitions or any config. Applying a
//! batch to a fresh clone copies each touched part once; replaying the log
//! into an unshared image copies nothing. [`MetadataImage::to_records`] is
//! the inverse: the records that rebuild an equal image (a snapshot).
//!
//! The top-level maps are still copied whole on the first change of a batch
//! (one pointer per topic); past some hundred thousand topics a persistent
//! map (a HAMT or B-tree with shared nodes) would make that logarithmic.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use gregor_security::acl::{
    AccessControlEntry, AclBinding, AclOperation, PatternType, PermissionType, ResourcePattern,
    ResourceType,
};
use uuid::Uuid;

use crate::quotas::QuotaEntity;
use crate::records::{BrokerEndpoint, QuotaValue};
use crate::{ConfigResource, MetadataRecord};

/// A partition's replica list (replicas, ISR): up to four brokers inline,
/// in the 24 bytes a `Vec` header takes, so the common replication factors
/// cost no allocation per partition (issue 13: memory per idle partition).
pub type ReplicaList = smallvec::SmallVec<[i32; 4]>;

/// One partition as the metadata log describes it. Kept small: an image
/// holds one per partition of the cluster (72 bytes, no allocation with up
/// to four replicas and no reassignment in progress; it was 112 bytes and
/// two allocations with `Vec`s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    /// Every replica, including those a reassignment in progress adds and
    /// removes: the brokers that host the partition now.
    pub replicas: ReplicaList,
    pub isr: ReplicaList,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// The reassignment in progress, if any: rare, so boxed (8 bytes when
    /// absent instead of two empty vectors' 48). Never `Some` with both
    /// lists empty (see [`Reassignment::boxed`]), so images compare equal
    /// whichever way they were built.
    pub reassignment: Option<Box<Reassignment>>,
}

/// The replicas a reassignment in progress adds and removes (Kafka's
/// `PartitionRecord.addingReplicas` / `removingReplicas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    /// The replicas it adds (ascending; a subset of `replicas`).
    pub adding: Vec<i32>,
    /// The replicas it removes once the others are in sync (ascending; a
    /// subset of `replicas`).
    pub removing: Vec<i32>,
}

impl Reassignment {
    /// `None` when both lists are empty (no reassignment in progress).
    pub fn boxed(adding: Vec<i32>, removing: Vec<i32>) -> Option<Box<Reassignment>> {
        (!adding.is_empty() || !removing.is_empty())
            .then(|| Box::new(Reassignment { adding, removing }))
    }
}

impl PartitionImage {
    /// Whether a reassignment is in progress (Kafka's
    /// `PartitionReassignmentReplicas.isReassignmentInProgress`).
    pub fn is_reassigning(&self) -> bool {
        self.reassignment.is_some()
    }

    /// The replicas a reassignment in progress adds (ascending; a subset of
    /// `replicas`). Empty when none is in progress.
    pub fn adding_replicas(&self) -> &[i32] {
        self.reassignment.as_deref().map_or(&[], |r| &r.adding)
    }

    /// The replicas a reassignment in progress removes once the others are
    /// in sync (ascending; a subset of `replicas`). Empty when none is.
    pub fn removing_replicas(&self) -> &[i32] {
        self.reassignment.as_deref().map_or(&[], |r| &r.removing)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    /// Kept with full B-tree nodes where that is cheap (see
    /// [`TopicImage::clone`] and [`MetadataImage::compact`]).
    pub partitions: BTreeMap<i32, PartitionImage>,
}

impl Clone for TopicImage {
    /// A copy whose partition map is built from its sorted entries, which
    /// fills the B-tree's nodes (eleven entries each), where a derived clone
    /// would copy the nodes as they are: about half full after partitions
    /// were inserted in order, ~145 bytes per partition instead of ~80.
    /// Same cost: one pass over the partitions.
    fn clone(&self) -> Self {
        TopicImage {
            name: self.name.clone(),
            topic_id: self.topic_id,
            partitions: self
                .partitions
                .iter()
                .map(|(&p, image)| (p, image.clone()))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerImage {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// Fenced brokers are registered but not live: they lead no partition
    /// and join no ISR until unfenced.
    pub fenced: bool,
    /// Its client listeners; empty when it registered only `host:port`.
    pub endpoints: Vec<BrokerEndpoint>,
}

impl BrokerImage {
    /// `(host, port)` of the broker's listener `name`: `None` if it has no
    /// such listener; its registered `host:port` if it named no listeners.
    pub fn endpoint(&self, name: &str) -> Option<(&str, u16)> {
        if self.endpoints.is_empty() {
            return Some((self.host.as_str(), self.port));
        }
        self.endpoints
            .iter()
            .find(|e| e.name == name)
            .map(|e| (e.host.as_str(), e.port))
    }
}

/// A user's SCRAM credential for one mechanism: what a SCRAM server needs
/// (Kafka's `ScramCredential`), never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredentialImage {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for ScramCredentialImage {
    // The keys are password equivalents for an offline attack.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredentialImage")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// The cluster's metadata at one point of the log. `Clone` is cheap (it
/// shares every map); see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    pub cluster_id: Option<String>,
    pub brokers: Arc<BTreeMap<i32, BrokerImage>>,
    topics: Arc<BTreeMap<Arc<str>, Arc<TopicImage>>>,
    topic_names: Arc<HashMap<Uuid, Arc<str>>>,
    configs: Arc<BTreeMap<ConfigResource, Arc<BTreeMap<String, String>>>>,
    /// The first producer id not yet handed out to any broker.
    pub next_producer_id: i64,
    /// Finalized feature levels (Kafka's `FeaturesImage`): a feature not
    /// named here is at level 0.
    pub features: Arc<BTreeMap<String, i16>>,
    /// How many feature level records this image applied: ApiVersions'
    /// `finalized_features_epoch` (clients keep the features of the highest
    /// epoch they saw, so it grows with every change).
    pub features_epoch: FeaturesEpoch,
    /// SCRAM credentials: user, then mechanism (Kafka's type id).
    scram: Arc<BTreeMap<String, BTreeMap<i8, ScramCredentialImage>>>,
    /// ACLs by id (Kafka's `AclsImage`).
    acls: Arc<BTreeMap<Uuid, AclBinding>>,
    /// Client quotas by entity, then key (Kafka's `ClientQuotasImage`).
    client_quotas: Arc<BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>>,
}

/// A count of feature changes seen by one image's history, not part of
/// the metadata itself: a snapshot replays to a smaller count than the log
/// it stands for, so images compare equal whatever their counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct FeaturesEpoch(pub i64);

impl PartialEq for FeaturesEpoch {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for FeaturesEpoch {}

impl MetadataImage {
    /// Applies one record in place, copying on write only the parts it
    /// touches that are shared with other images.
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::Cluster { cluster_id } => self.cluster_id = Some(cluster_id.clone()),
            MetadataRecord::RegisterBroker {
                node_id,
                host,
                port,
                rack,
            } => {
                // Re-registering moves the endpoint but keeps the fence: only
                // a BrokerFence record (the controller's decision) changes it.
                let fenced = self.brokers.get(node_id).is_some_and(|b| b.fenced);
                Arc::make_mut(&mut self.brokers).insert(
                    *node_id,
                    BrokerImage {
                        node_id: *node_id,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                        fenced,
                        endpoints: Vec::new(),
                    },
                );
            }
            MetadataRecord::BrokerEndpoints { node_id, endpoints } => {
                if let Some(b) = Arc::make_mut(&mut self.brokers).get_mut(node_id) {
                    b.endpoints = endpoints.clone();
                }
            }
            MetadataRecord::BrokerFence { node_id, fenced } => {
                if self
                    .brokers
                    .get(node_id)
                    .is_some_and(|b| b.fenced != *fenced)
                {
                    if let Some(b) = Arc::make_mut(&mut self.brokers).get_mut(node_id) {
                        b.fenced = *fenced;
                    }
                }
            }
            MetadataRecord::Topic { name, topic_id } => {
                let key: Arc<str> = Arc::from(name.as_str());
                let names = Arc::make_mut(&mut self.topic_names);
                // A topic record replaces any topic of that name: its old id
                // no longer resolves (the controller never does this, but a
                // replay must not leave a dangling id behind).
                if let Some(old) = self.topics.get(name.as_str()) {
                    if old.topic_id != *topic_id {
                        names.remove(&old.topic_id);
                    }
                }
                names.insert(*topic_id, key.clone());
                Arc::make_mut(&mut self.topics).insert(
                    key,
                    Arc::new(TopicImage {
                        name: name.clone(),
                        topic_id: *topic_id,
                        partitions: BTreeMap::new(),
                    }),
                );
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
                adding_replicas,
                removing_replicas,
            } => {
                let Some(name) = self.topic_names.get(topic_id) else {
                    return;
                };
                let topics = Arc::make_mut(&mut self.topics);
                if let Some(topic) = topics.get_mut(&**name) {
                    Arc::make_mut(topic).partitions.insert(
                        *partition,
                        PartitionImage {
                            replicas: ReplicaList::from_slice(replicas),
                            isr: ReplicaList::from_slice(isr),
                            leader: *leader,
                            leader_epoch: *leader_epoch,
                            partition_epoch: *partition_epoch,
                            reassignment: Reassignment::boxed(
                                adding_replicas.clone(),
                                removing_replicas.clone(),
                            ),
                        },
                    );
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                if !self.topic_names.contains_key(topic_id) {
                    return;
                }
                if let Some(name) = Arc::make_mut(&mut self.topic_names).remove(topic_id) {
                    Arc::make_mut(&mut self.topics).remove(&name);
                    let resource = ConfigResource::Topic(name.to_string());
                    if self.configs.contains_key(&resource) {
                        Arc::make_mut(&mut self.configs).remove(&resource);
                    }
                }
            }
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => match value {
                Some(v) => {
                    let map = Arc::make_mut(&mut self.configs)
                        .entry(resource.clone())
                        .or_default();
                    Arc::make_mut(map).insert(name.clone(), v.clone());
                }
                None => {
                    let has = self
                        .configs
                        .get(resource)
                        .is_some_and(|m| m.contains_key(name));
                    if !has {
                        return;
                    }
                    let configs = Arc::make_mut(&mut self.configs);
                    if let Some(map) = configs.get_mut(resource) {
                        let map = Arc::make_mut(map);
                        map.remove(name);
                        if map.is_empty() {
                            configs.remove(resource);
                        }
                    }
                }
            },
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id);
            }
            MetadataRecord::FeatureLevel { name, level } => {
                self.features_epoch.0 += 1;
                let features = Arc::make_mut(&mut self.features);
                if *level == 0 {
                    features.remove(name);
                } else {
                    features.insert(name.clone(), *level);
                }
            }
            MetadataRecord::UserScramCredential {
                name,
                mechanism,
                salt,
                stored_key,
                server_key,
                iterations,
            } => {
                Arc::make_mut(&mut self.scram)
                    .entry(name.clone())
                    .or_default()
                    .insert(
                        *mechanism,
                        ScramCredentialImage {
                            salt: salt.clone(),
                            stored_key: stored_key.clone(),
                            server_key: server_key.clone(),
                            iterations: *iterations,
                        },
                    );
            }
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                let has = self
                    .scram
                    .get(name)
                    .is_some_and(|m| m.contains_key(mechanism));
                if !has {
                    return;
                }
                let scram = Arc::make_mut(&mut self.scram);
                if let Some(by_mechanism) = scram.get_mut(name) {
                    by_mechanism.remove(mechanism);
                    if by_mechanism.is_empty() {
                        scram.remove(name);
                    }
                }
            }
            MetadataRecord::AccessControlEntry {
                id,
                resource_type,
                resource_name,
                pattern_type,
                principal,
                host,
                operation,
                permission_type,
            } => {
                let binding = AclBinding {
                    pattern: ResourcePattern {
                        resource_type: ResourceType::from_code(*resource_type),
                        name: resource_name.clone(),
                        pattern_type: PatternType::from_code(*pattern_type),
                    },
                    entry: AccessControlEntry {
                        principal: principal.clone(),
                        host: host.clone(),
                        operation: AclOperation::from_code(*operation),
                        permission: PermissionType::from_code(*permission_type),
                    },
                };
                Arc::make_mut(&mut self.acls).insert(*id, binding);
            }
            // Transaction markers change nothing themselves: readers that
            // must see a transaction whole go through
            // `crate::transaction::Replayer`, which holds its records back.
            MetadataRecord::BeginTransaction { .. }
            | MetadataRecord::EndTransaction
            | MetadataRecord::AbortTransaction { .. } => {}
            MetadataRecord::RemoveAccessControlEntry { id } => {
                if self.acls.contains_key(id) {
                    Arc::make_mut(&mut self.acls).remove(id);
                }
            }
            MetadataRecord::ClientQuota {
                entity,
                key,
                value,
                remove,
            } => {
                let entity: QuotaEntity = entity
                    .iter()
                    .map(|p| (p.entity_type.clone(), p.entity_name.clone()))
                    .collect();
                if *remove {
                    if !self
                        .client_quotas
                        .get(&entity)
                        .is_some_and(|q| q.contains_key(key))
                    {
                        return;
                    }
                    let quotas = Arc::make_mut(&mut self.client_quotas);
                    if let Some(q) = quotas.get_mut(&entity) {
                        q.remove(key);
                        if q.is_empty() {
                            quotas.remove(&entity);
                        }
                    }
                } else {
                    Arc::make_mut(&mut self.client_quotas)
                        .entry(entity)
                        .or_default()
                        .insert(key.clone(), *value);
                }
            }
        }
    }

    /// The finalized level of feature `name` (0 when not finalized).
    pub fn feature_level(&self, name: &str) -> i16 {
        self.features.get(name).copied().unwrap_or(0)
    }

    /// The next image: this one with `records` applied, sharing every part
    /// the records do not touch (Kafka's `MetadataDelta.apply()`).
    pub fn with_records<'a>(&self, records: impl IntoIterator<Item = &'a MetadataRecord>) -> Self {
        let mut next = self.clone();
        for r in records {
            next.apply(r);
        }
        next.compact(Some(self));
        next
    }

    /// Rebuilds, with full B-tree nodes, the partition maps of the topics
    /// that gained partitions since `base` (all topics when `None`, after
    /// replaying a log or a snapshot into an empty image): partitions are
    /// inserted in order, which leaves every node about half full. Topics
    /// shared with another image are left as they are (they were built or
    /// copied full). One pass over the partitions of each topic rebuilt, as
    /// the change that grew it.
    pub fn compact(&mut self, base: Option<&MetadataImage>) {
        // Untouched since it was shared: no topic changed.
        let Some(topics) = Arc::get_mut(&mut self.topics) else {
            return;
        };
        for (name, topic) in topics.iter_mut() {
            // A topic still shared with `base` did not change: skipped
            // before the lookup, so an image of many topics pays little.
            if let Some(topic) = Arc::get_mut(topic) {
                let before = base
                    .and_then(|b| b.topics.get(name))
                    .map_or(0, |t| t.partitions.len());
                if topic.partitions.len() > before {
                    topic.partitions = std::mem::take(&mut topic.partitions).into_iter().collect();
                }
            }
        }
    }

    /// Records that rebuild an equal image when applied to an empty one, in
    /// an order that replays correctly (a topic before its partitions). This
    /// is what a snapshot holds.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        if let Some(cluster_id) = &self.cluster_id {
            out.push(MetadataRecord::Cluster {
                cluster_id: cluster_id.clone(),
            });
        }
        for b in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker {
                node_id: b.node_id,
                host: b.host.clone(),
                port: b.port,
                rack: b.rack.clone(),
            });
            if !b.endpoints.is_empty() {
                out.push(MetadataRecord::BrokerEndpoints {
                    node_id: b.node_id,
                    endpoints: b.endpoints.clone(),
                });
            }
            if b.fenced {
                out.push(MetadataRecord::BrokerFence {
                    node_id: b.node_id,
                    fenced: true,
                });
            }
        }
        for t in self.topics.values() {
            out.push(MetadataRecord::Topic {
                name: t.name.clone(),
                topic_id: t.topic_id,
            });
            for (&partition, p) in &t.partitions {
                out.push(MetadataRecord::Partition {
                    topic_id: t.topic_id,
                    partition,
                    replicas: p.replicas.to_vec(),
                    isr: p.isr.to_vec(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    adding_replicas: p.adding_replicas().to_vec(),
                    removing_replicas: p.removing_replicas().to_vec(),
                });
            }
        }
        for (resource, configs) in self.configs.iter() {
            for (name, value) in configs.iter() {
                out.push(MetadataRecord::Config {
                    resource: resource.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        for (name, by_mechanism) in self.scram.iter() {
            for (&mechanism, c) in by_mechanism {
                out.push(MetadataRecord::UserScramCredential {
                    name: name.clone(),
                    mechanism,
                    salt: c.salt.clone(),
                    stored_key: c.stored_key.clone(),
                    server_key: c.server_key.clone(),
                    iterations: c.iterations,
                });
            }
        }
        for (id, binding) in self.acls.iter() {
            out.push(MetadataRecord::acl(*id, binding));
        }
        for (entity, quotas) in self.client_quotas.iter() {
            for (key, value) in quotas {
                out.push(MetadataRecord::ClientQuota {
                    entity: crate::quotas::parts(entity),
                    key: key.clone(),
                    value: *value,
                    remove: false,
                });
            }
        }
        if self.next_producer_id != 0 {
            out.push(MetadataRecord::ProducerIds {
                // No broker owns a block because of a snapshot; -1 says so.
                broker_id: -1,
                next_producer_id: self.next_producer_id,
            });
        }
        for (name, level) in self.features.iter() {
            out.push(MetadataRecord::FeatureLevel {
                name: name.clone(),
                level: *level,
            });
        }
        out
    }

    /// Whether topic `name` is the very same (shared, not a copy) in both
    /// images, or absent from both: for images made one from another, a
    /// cheap test that no record touched it since. `false` says only "maybe
    /// changed".
    pub fn topic_shared_with(&self, other: &MetadataImage, name: &str) -> bool {
        match (self.topics.get(name), other.topics.get(name)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }

    /// [`MetadataImage::topic_shared_with`] for the configs of a resource.
    pub fn configs_shared_with(&self, other: &MetadataImage, resource: &ConfigResource) -> bool {
        if Arc::ptr_eq(&self.configs, &other.configs) {
            return true;
        }
        match (self.configs.get(resource), other.configs.get(resource)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }

    /// The ids of the registered, unfenced brokers, ascending.
    pub fn live_broker_ids(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.node_id)
            .collect()
    }

    /// Whether broker `id` is registered and not fenced.
    pub fn is_live(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name).map(|t| &**t)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicImage> {
        self.topic_names.get(id).and_then(|n| self.topic(n))
    }

    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.topics.values().map(|t| &**t)
    }

    /// The dynamic configs set on a resource (topic overrides or dynamic broker configs).
    pub fn configs(&self, resource: &ConfigResource) -> Option<&BTreeMap<String, String>> {
        self.configs.get(resource).map(|m| &**m)
    }

    /// `user`'s SCRAM credential for `mechanism` (Kafka's type id).
    pub fn scram_credential(&self, user: &str, mechanism: i8) -> Option<&ScramCredentialImage> {
        self.scram.get(user).and_then(|m| m.get(&mechanism))
    }

    /// `user`'s SCRAM credentials by mechanism, if it has any.
    pub fn scram_credentials(&self, user: &str) -> Option<&BTreeMap<i8, ScramCredentialImage>> {
        self.scram.get(user)
    }

    /// Every user with a SCRAM credential, in name order, with them.
    pub fn scram_users(&self) -> impl Iterator<Item = (&str, &BTreeMap<i8, ScramCredentialImage>)> {
        self.scram.iter().map(|(u, m)| (u.as_str(), m))
    }

    /// Every ACL with its id, in id order.
    pub fn acls(&self) -> impl Iterator<Item = (&Uuid, &AclBinding)> + Clone {
        self.acls.iter()
    }

    /// The quotas of one client quota entity, if it has any.
    pub fn client_quotas(&self, entity: &QuotaEntity) -> Option<&BTreeMap<String, QuotaValue>> {
        self.client_quotas.get(entity)
    }

    /// Every client quota entity with its quotas, in entity order.
    pub fn all_client_quotas(
        &self,
    ) -> impl Iterator<Item = (&QuotaEntity, &BTreeMap<String, QuotaValue>)> {
        self.client_quotas.iter()
    }

    /// Whether any client quota is set (the broker skips quota work when not).
    pub fn has_client_quotas(&self) -> bool {
        !self.client_quotas.is_empty()
    }

    /// The resources that have dynamic configs (ListConfigResources).
    pub fn config_resources(&self) -> impl Iterator<Item = &ConfigResource> {
        self.configs.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_topic_drops_partitions_and_configs() {
        let mut image = MetadataImage::default();
        let id = Uuid::from_u128(1);
        image.apply(&MetadataRecord::Topic {
            name: "a".into(),
            topic_id: id,
        });
        image.apply(&MetadataRecord::Partition {
            topic_id: id,
            partition: 0,
            replicas: vec![1],
            isr: vec![1],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            adding_replicas: vec![],
            removing_replicas: vec![],
        });
        image.apply(&MetadataRecord::Config {
            resource: ConfigResource::Topic("a".into()),
            name: "retention.ms".into(),
            value: Some("1000".into()),
        });
        assert_eq!(image.topic("a").unwrap().partitions.len(), 1);
        assert!(image.configs(&ConfigResource::Topic("a".into())).is_some());
        image.apply(&MetadataRecord::RemoveTopic { topic_id: id });
        assert!(image.topic("a").is_none());
        assert!(image.topic_by_id(&id).is_none());
        assert!(image.configs(&ConfigResource::Topic("a".into())).is_none());
    }

    #[test]
    fn a_change_copies_only_what_it_touches() {
        let mut image = MetadataImage::default();
        for (i, name) in ["a", "b"].into_iter().enumerate() {
            let id = Uuid::from_u128(i as u128 + 1);
            image.apply(&MetadataRecord::Topic {
                name: name.into(),
                topic_id: id,
            });
            image.apply(&partition(id, 0, 0));
        }
        image.apply(&MetadataRecord::Config {
            resource: ConfigResource::Topic("b".into()),
            name: "retention.ms".into(),
            value: Some("1".into()),
        });
        let next = image.with_records(&[partition(Uuid::from_u128(1), 0, 1)]);
        assert_eq!(next.topic("a").unwrap().partitions[&0].leader_epoch, 1);
        assert_eq!(image.topic("a").unwrap().partitions[&0].leader_epoch, 0);
        // Untouched parts are the same allocations, not copies.
        assert!(Arc::ptr_eq(&image.topics["b"], &next.topics["b"]));
        assert!(Arc::ptr_eq(&image.configs, &next.configs));
        assert!(Arc::ptr_eq(&image.topic_names, &next.topic_names));
        assert!(Arc::ptr_eq(&image.brokers, &next.brokers));
        assert!(!Arc::ptr_eq(&image.topics["a"], &next.topics["a"]));
        assert!(next.topic_shared_with(&image, "b"));
        assert!(!next.topic_shared_with(&image, "a"));
        let b = ConfigResource::Topic("b".into());
        assert!(next.configs_shared_with(&image, &b));
        let changed = next.with_records(&[MetadataRecord::Config {
            resource: b.clone(),
            name: "retention.ms".into(),
            value: Some("2".into()),
        }]);
        assert!(!changed.configs_shared_with(&next, &b));
        assert!(changed.configs_shared_with(&next, &ConfigResource::Topic("a".into())));
        assert!(changed.topic_shared_with(&next, "a"));
    }

    #[test]
    fn fencing_survives_reregistration_and_snapshots() {
        let register = |node_id: i32, port: u16| MetadataRecord::RegisterBroker {
            node_id,
            host: "h".into(),
            port,
            rack: None,
        };
        let fence = |node_id: i32, fenced: bool| MetadataRecord::BrokerFence { node_id, fenced };
        let mut image = MetadataImage::default();
        image.apply(&register(2, 1));
        image.apply(&register(1, 1));
        image.apply(&fence(9, true)); // unknown: ignored
        assert!(image.brokers.get(&9).is_none());
        assert_eq!(image.live_broker_ids(), vec![1, 2]);
        image.apply(&fence(2, true));
        assert_eq!(image.live_broker_ids(), vec![1]);
        assert!(!image.is_live(2) && image.is_live(1) && !image.is_live(9));
        image.apply(&register(2, 7));
        assert!(image.brokers[&2].fenced, "re-registering keeps the fence");
        assert_eq!(image.brokers[&2].port, 7);
        let restored = MetadataImage::default().with_records(&image.to_records());
        assert_eq!(restored, image);
        image.apply(&fence(2, false));
        assert_eq!(image.live_broker_ids(), vec![1, 2]);
    }

    #[test]
    fn broker_endpoints_per_listener() {
        let endpoint = |name: &str, port: u16| BrokerEndpoint {
            name: name.into(),
            host: "h".into(),
            port,
            security_protocol: name.into(),
        };
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::RegisterBroker {
            node_id: 1,
            host: "h".into(),
            port: 9092,
            rack: None,
        });
        // Registered before listeners were recorded: its one endpoint on every listener.
        assert_eq!(image.brokers[&1].endpoint("SSL"), Some(("h", 9092)));
        image.apply(&MetadataRecord::BrokerEndpoints {
            node_id: 1,
            endpoints: vec![endpoint("PLAINTEXT", 9092), endpoint("SSL", 9093)],
        });
        assert_eq!(image.brokers[&1].endpoint("SSL"), Some(("h", 9093)));
        assert_eq!(image.brokers[&1].endpoint("EXTERNAL"), None);
        let restored = MetadataImage::default().with_records(&image.to_records());
        assert_eq!(restored, image);
        // Endpoints of an unknown broker are ignored; a re-registration clears them.
        image.apply(&MetadataRecord::BrokerEndpoints {
            node_id: 5,
            endpoints: vec![endpoint("SSL", 1)],
        });
        assert!(!image.brokers.contains_key(&5));
        image.apply(&MetadataRecord::RegisterBroker {
            node_id: 1,
            host: "h".into(),
            port: 9092,
            rack: None,
        });
        assert!(image.brokers[&1].endpoints.is_empty());
        // The record's JSON form, as the metadata log stores it.
        let json = serde_json::to_string(&MetadataRecord::BrokerEndpoints {
            node_id: 1,
            endpoints: vec![endpoint("SSL", 9093)],
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"type":"BrokerEndpoints","node_id":1,"endpoints":[{"name":"SSL","host":"h","port":9093,"security_protocol":"SSL"}]}"#
        );
    }

    #[test]
    fn scram_credentials_apply_and_remove() {
        let cred = |mechanism: i8, iterations: i32| MetadataRecord::UserScramCredential {
            name: "alice".into(),
            mechanism,
            salt: vec![1],
            stored_key: vec![2],
            server_key: vec![3],
            iterations,
        };
        let mut image = MetadataImage::default();
        image.apply(&cred(1, 4096));
        image.apply(&cred(2, 8192));
        image.apply(&cred(1, 5000));
        assert_eq!(image.scram_credential("alice", 1).unwrap().iterations, 5000);
        assert_eq!(image.scram_credentials("alice").unwrap().len(), 2);
        let before = image.clone();
        image.apply(&MetadataRecord::RemoveUserScramCredential {
            name: "alice".into(),
            mechanism: 1,
        });
        assert!(image.scram_credential("alice", 1).is_none());
        assert_eq!(
            before.scram_credential("alice", 1).unwrap().iterations,
            5000
        );
        image.apply(&MetadataRecord::RemoveUserScramCredential {
            name: "alice".into(),
            mechanism: 2,
        });
        assert!(image.scram_credentials("alice").is_none());
        assert_eq!(image.scram_users().count(), 0);
        assert_eq!(
            MetadataImage::default().with_records(&before.to_records()),
            before
        );
        assert!(!format!("{:?}", before).contains("stored_key"));
    }

    fn partition(topic_id: Uuid, partition: i32, epoch: i32) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id,
            partition,
            replicas: vec![1, 2],
            isr: vec![1],
            leader: 1,
            leader_epoch: epoch,
            partition_epoch: epoch,
            adding_replicas: vec![],
            removing_replicas: vec![],
        }
    }

    /// A partition in the middle of moving from [1, 2] to [3, 2].
    fn reassigning(topic_id: Uuid, partition: i32, epoch: i32) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id,
            partition,
            replicas: vec![3, 2, 1],
            isr: vec![1, 2],
            leader: 1,
            leader_epoch: epoch,
            partition_epoch: epoch,
            adding_replicas: vec![3],
            removing_replicas: vec![1],
        }
    }

    /// xorshift64*: deterministic random record sequences without a dependency.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
        }
    }

    /// A random sequence over a few names, ids, brokers and configs, so that
    /// records collide: topics re-created and removed, configs set and unset,
    /// partitions of unknown or removed topics.
    fn random_records(seed: u64, len: usize) -> Vec<MetadataRecord> {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut next_id = 1u128;
        let mut ids: Vec<Uuid> = Vec::new();
        let names = ["a", "b", "c", "d"];
        let resources = |rng: &mut Rng| match rng.below(3) {
            0 => ConfigResource::Topic(names[rng.below(4) as usize].into()),
            1 => ConfigResource::Broker(["", "1"][rng.below(2) as usize].into()),
            _ => ConfigResource::Group("g".into()),
        };
        (0..len)
            .map(|_| match rng.below(15) {
                0 => MetadataRecord::Cluster {
                    cluster_id: format!("c{}", rng.below(3)),
                },
                1 => MetadataRecord::RegisterBroker {
                    node_id: rng.below(3) as i32,
                    host: "h".into(),
                    port: rng.below(3) as u16,
                    rack: (rng.below(2) == 0).then(|| "r".into()),
                },
                2 => {
                    next_id += 1;
                    let id = Uuid::from_u128(next_id);
                    ids.push(id);
                    MetadataRecord::Topic {
                        name: names[rng.below(4) as usize].into(),
                        topic_id: id,
                    }
                }
                3 | 4 => {
                    let id = match ids.len() {
                        0 => Uuid::from_u128(999),
                        n => ids[rng.below(n as u64) as usize],
                    };
                    let make = [partition, reassigning][rng.below(2) as usize];
                    make(id, rng.below(4) as i32, rng.below(5) as i32)
                }
                5 => MetadataRecord::RemoveTopic {
                    topic_id: match ids.len() {
                        0 => Uuid::from_u128(998),
                        n => ids[rng.below(n as u64) as usize],
                    },
                },
                6 => MetadataRecord::Config {
                    resource: resources(&mut rng),
                    name: ["x", "y"][rng.below(2) as usize].into(),
                    value: (rng.below(3) != 0).then(|| rng.below(10).to_string()),
                },
                7 => MetadataRecord::BrokerFence {
                    node_id: rng.below(4) as i32,
                    fenced: rng.below(2) == 0,
                },
                8 => MetadataRecord::UserScramCredential {
                    name: names[rng.below(4) as usize].into(),
                    mechanism: 1 + rng.below(2) as i8,
                    salt: vec![rng.below(256) as u8],
                    stored_key: vec![1; 32],
                    server_key: vec![2; 32],
                    iterations: 4096 + rng.below(3) as i32,
                },
                9 => MetadataRecord::RemoveUserScramCredential {
                    name: names[rng.below(4) as usize].into(),
                    mechanism: 1 + rng.below(2) as i8,
                },
                12 => MetadataRecord::AccessControlEntry {
                    id: Uuid::from_u128(100 + rng.below(4) as u128),
                    resource_type: 2 + rng.below(2) as i8,
                    resource_name: names[rng.below(4) as usize].into(),
                    pattern_type: 3 + rng.below(2) as i8,
                    principal: ["User:alice", "User:*"][rng.below(2) as usize].into(),
                    host: "*".into(),
                    operation: 2 + rng.below(13) as i8,
                    permission_type: 2 + rng.below(2) as i8,
                },
                13 => MetadataRecord::RemoveAccessControlEntry {
                    id: Uuid::from_u128(100 + rng.below(4) as u128),
                },
                14 => MetadataRecord::ClientQuota {
                    entity: vec![crate::QuotaEntityPart {
                        entity_type: ["user", "client-id"][rng.below(2) as usize].into(),
                        entity_name: (rng.below(3) != 0)
                            .then(|| names[rng.below(4) as usize].into()),
                    }],
                    key: ["producer_byte_rate", "consumer_byte_rate"][rng.below(2) as usize].into(),
                    value: crate::QuotaValue(rng.below(1000) as f64),
                    remove: rng.below(3) == 0,
                },
                10 => MetadataRecord::ProducerIds {
                    broker_id: 1,
                    next_producer_id: rng.below(10_000) as i64,
                },
                _ => MetadataRecord::FeatureLevel {
                    name: ["transaction.version", "group.version"][rng.below(2) as usize].into(),
                    level: rng.below(3) as i16,
                },
            })
            .collect()
    }

    /// Replaying a log whole, or a snapshot of its prefix plus the tail, or
    /// applying it batch by batch to shared images, gives the same image.
    #[test]
    fn snapshot_plus_tail_equals_full_replay() {
        for seed in 0..300 {
            let records = random_records(seed, 120);
            let mut full = MetadataImage::default();
            for r in &records {
                full.apply(r);
            }
            let cut = (seed as usize * 7) % records.len();
            let prefix = MetadataImage::default().with_records(&records[..cut]);
            let restored = MetadataImage::default()
                .with_records(&prefix.to_records())
                .with_records(&records[cut..]);
            assert_eq!(restored, full, "seed {seed}, cut at {cut}");
            assert_eq!(
                MetadataImage::default().with_records(&full.to_records()),
                full,
                "seed {seed}: snapshot of the whole"
            );
            // Batches applied to images that earlier images still share.
            let mut kept = vec![MetadataImage::default()];
            for chunk in records.chunks(5) {
                let next = kept.last().unwrap().with_records(chunk);
                kept.push(next);
            }
            assert_eq!(kept.last().unwrap(), &full, "seed {seed}: batched");
            // Earlier images were not changed by later batches.
            let mut again = MetadataImage::default();
            for (i, chunk) in records.chunks(5).enumerate() {
                assert_eq!(kept[i], again, "seed {seed}: image {i} changed");
                for r in chunk {
                    again.apply(r);
                }
            }
        }
    }
}
