//! Cluster metadata: a log of records, the image built by replaying it, the
//! configuration definitions, and the controller's decisions as pure functions.
//!
//! # Layout
//!
//! - [`records`]: [`MetadataRecord`], the unit appended to the metadata log
//!   (`__cluster_metadata-0`), and its encoding.
//! - [`image`]: [`MetadataImage`], the state after replaying records.
//! - [`config_defs`]: every topic and broker config Kafka users set, with
//!   Kafka's names, types, defaults, validation and synonyms.
//! - [`controller`]: the controller's decisions (create/delete topics, add
//!   partitions, alter configs, allocate producer ids): image + request in,
//!   records to append (or a [`ControllerError`]) out. No I/O, so a Raft
//!   quorum can later replicate exactly these records.
//! - [`election`]: leaders and ISRs as brokers are fenced, unfenced or shut
//!   down, for AlterPartition and ElectLeaders, and partition reassignments
//!   (start, cancel, complete); also image in, records out.
//! - [`acls`]: CreateAcls' and DeleteAcls' decisions and DescribeAcls'
//!   lookup (ACLs kept in the image by id, as `gregor-security`'s bindings).
//! - [`quotas`]: AlterClientQuotas' decision and DescribeClientQuotas'
//!   filter (client quota entities and their quotas, kept in the image).
//! - [`scram`]: AlterUserScramCredentials' decision (users' SCRAM
//!   credentials, kept in the image, derived with `gregor-security`).
//! - [`transaction`]: a change too large for one metadata batch written as
//!   a KIP-868 transaction over several, and the [`transaction::Replayer`]
//!   that applies it whole.
//!
//! ```
//! use gregor_metadata::{controller, MetadataImage};
//! let mut image = MetadataImage::default();
//! let records = controller::create_topic(
//!     &image, &controller::CreateTopic::new("orders", 3), &[1], uuid::Uuid::from_u128(7),
//! ).unwrap();
//! for r in &records { image.apply(r); }
//! assert_eq!(image.topic("orders").unwrap().partitions.len(), 3);
//! ```

pub mod acls;
pub mod config_defs;
pub mod controller;
pub mod election;
pub mod image;
pub mod quotas;
pub mod records;
pub mod scram;
pub mod transaction;

pub use controller::ControllerError;
pub use image::{
    MetadataImage, PartitionImage, Reassignment, ReplicaList, ScramCredentialImage, TopicImage,
};
pub use records::{BrokerEndpoint, ConfigResource, MetadataRecord, QuotaEntityPart, QuotaValue};
