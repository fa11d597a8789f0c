//! Where a broker's metadata comes from: the embedded single-node metadata
//! log ([`MetadataStore`], a bare `gregor server`), or a Raft metadata
//! quorum ([`crate::cluster::QuorumLink`], when `controller.quorum.voters`
//! names one). Readers only see [`MetadataLog::image`]; writers go through
//! `Broker::controller_update`, which decides on an image and commits the
//! records through whichever log this is.

use std::sync::Arc;

use gregor_metadata::MetadataImage;

use crate::cluster::QuorumLink;
use crate::metadata_store::MetadataStore;

pub enum MetadataLog {
    Local(Box<MetadataStore>),
    Quorum(Arc<QuorumLink>),
}

impl std::fmt::Debug for MetadataLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(s) => s.fmt(f),
            Self::Quorum(_) => f.write_str("MetadataLog::Quorum"),
        }
    }
}

impl MetadataLog {
    /// The current image (cheap: an `Arc`).
    pub fn image(&self) -> Arc<MetadataImage> {
        match self {
            Self::Local(s) => s.image(),
            Self::Quorum(q) => q.image(),
        }
    }

    /// The embedded store, when this is a single-node log.
    pub fn local(&self) -> Option<&MetadataStore> {
        match self {
            Self::Local(s) => Some(s),
            Self::Quorum(_) => None,
        }
    }

    /// The quorum link, when this node is a member of a Raft quorum.
    pub fn quorum(&self) -> Option<&Arc<QuorumLink>> {
        match self {
            Self::Local(_) => None,
            Self::Quorum(q) => Some(q),
        }
    }
}
