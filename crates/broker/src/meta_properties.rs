//! `meta.properties`: the identity a formatted log directory carries (which
//! cluster, which node, which directory), and the checks that keep a node
//! from starting on another node's or another cluster's data. Kafka's
//! `MetaProperties` and `MetaPropertiesEnsemble`, with Kafka's messages.
//!
//! # On-disk format
//!
//! `<dir>/meta.properties`, Java properties text as Kafka 4 writes it with
//! `Properties.store(writer, "")`: an empty comment, the time of writing as
//! `java.util.Date` prints it, then the keys (sorted, as JDK 18 and later
//! store them; older JDKs wrote them in hash order `node.id`,
//! `directory.id`, `version`, `cluster.id`, which reads the same):
//!
//! ```text
//! #
//! #Thu Oct 24 19:33:01 UTC 2024
//! cluster.id=4L6g3nShT-eMCtK--X86Aw
//! directory.id=kVSHbEiOQHOX7SEBZTCsUw
//! node.id=1
//! version=1
//! ```
//!
//! | key            | version 1 (KRaft, written)  | version 0 (ZooKeeper era, read only) |
//! | -------------- | --------------------------- | ------------------------------------ |
//! | `version`      | `1`                         | `0`, or absent                       |
//! | `cluster.id`   | required, any string        | optional                             |
//! | `node.id`      | required, an int            | absent: `broker.id`, optional        |
//! | `directory.id` | optional, a Kafka Uuid (22 chars of URL-safe base64), distinct per dir, never one of the 100 reserved ids | same |
//!
//! The file is replaced atomically: `meta.properties.tmp`, fsync, rename,
//! fsync of the directory.
//!
//! # The dirs of a node
//!
//! A node's `log.dirs` plus its `metadata.log.dir` form a
//! [`MetaPropertiesEnsemble`]: each dir is *empty* (no `meta.properties`;
//! the dir itself may not exist yet), *formatted*, or in *error* (the file
//! cannot be read or is invalid). All formatted dirs must name the same
//! cluster.id and the configured node.id, and no two the same directory.id.
//!
//! `gregor storage format` writes the empty dirs. A node whose config names a
//! controller quorum (`controller.quorum.voters` or
//! `controller.quorum.bootstrap.servers`) starts only on formatted dirs, as
//! Kafka does; a node without one, the embedded single-node default, formats
//! its empty dirs itself with a fresh cluster id ([`MetaPropertiesEnsemble::open_for_start`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;
use uuid::Uuid;

use crate::broker::base64_uuid;
use crate::config::BrokerConfig;
use crate::java_properties::{escape, java_date, load_properties};

/// The name of the file in every log directory.
pub const META_PROPERTIES_NAME: &str = "meta.properties";

const VERSION_PROP: &str = "version";
const CLUSTER_ID_PROP: &str = "cluster.id";
const NODE_ID_PROP: &str = "node.id";
const BROKER_ID_PROP: &str = "broker.id";
const DIRECTORY_ID_PROP: &str = "directory.id";

/// The format version of a `meta.properties` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaPropertiesVersion {
    /// ZooKeeper-era: `broker.id`, optional fields; implied by a missing `version`.
    V0,
    /// KRaft: `node.id` and `cluster.id` required.
    V1,
}

impl MetaPropertiesVersion {
    pub fn number(self) -> i32 {
        match self {
            Self::V0 => 0,
            Self::V1 => 1,
        }
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        match text.trim().parse::<i64>() {
            Ok(0) => Ok(Self::V0),
            Ok(1) => Ok(Self::V1),
            Ok(n) => Err(ParseError::UnknownVersion(n)),
            Err(_) => Err(ParseError::InvalidVersion(text.to_string())),
        }
    }
}

/// Why the text of a `meta.properties` file is not valid (Kafka's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("Invalid meta.properties version string '{0}'")]
    InvalidVersion(String),
    #[error("Unknown meta.properties version number {0}")]
    UnknownVersion(i64),
    #[error("Failed to find {0}")]
    Missing(&'static str),
    #[error("Unable to read {0} as a base-10 number.")]
    NotANumber(&'static str),
    #[error("Unable to read directory.id as a Uuid: `{0}` is not 16 bytes of URL-safe base64")]
    InvalidDirectoryId(String),
    #[error("cluster.id was not found.")]
    NoClusterId,
    #[error(transparent)]
    Properties(#[from] crate::java_properties::ParseError),
}

/// Why a node's dirs cannot be used, or formatted (Kafka's messages where
/// Kafka has one).
#[derive(Debug, thiserror::Error)]
pub enum MetaPropertiesError {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Error loading {}: {source}", .path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: ParseError,
    },
    #[error("Invalid cluster.id in: {}. Expected {expected}, but read {found}", .path.display())]
    ClusterIdMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error(
        "Stored node id {stored} doesn't match previous node id {expected} in {}. If you moved \
         your data, make sure your configured node id matches. If you intend to create a new \
         node, you should remove all data in your data directories.",
        .path.display()
    )]
    NodeIdMismatch {
        path: PathBuf,
        stored: i32,
        expected: i32,
    },
    #[error("Invalid reserved directory ID {} found in {}", base64_uuid(*.id), .dir.display())]
    ReservedDirectoryId { dir: PathBuf, id: Uuid },
    #[error(
        "Duplicate directory ID {} found. It was the ID of {}, but also of {}",
        base64_uuid(*.id), .first.display(), .second.display()
    )]
    DuplicateDirectoryId {
        id: Uuid,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("Error: cluster ID not found in {}", .dir.display())]
    NoClusterId { dir: PathBuf },
    #[error("Error: node ID not found in {}", .dir.display())]
    NoNodeId { dir: PathBuf },
    #[error(
        "No readable meta.properties files found in {dirs} (have you run `gregor storage format` \
         to format the directories?)"
    )]
    NoneFormatted { dirs: String },
    #[error(
        "No `meta.properties` found in {} (have you run `gregor storage format` to format the \
         directory?)",
        .dir.display()
    )]
    Unformatted { dir: PathBuf },
    #[error("Encountered I/O error in metadata log directory {}. Cannot continue. ({source})", .dir.display())]
    MetadataDirUnreadable {
        dir: PathBuf,
        #[source]
        source: Box<MetaPropertiesError>,
    },
}

/// The contents of one `meta.properties` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    pub version: MetaPropertiesVersion,
    pub cluster_id: Option<String>,
    /// `node.id` (V1) or `broker.id` (V0).
    pub node_id: Option<i32>,
    pub directory_id: Option<Uuid>,
}

impl MetaProperties {
    /// A version 1 (KRaft) file, as `gregor storage format` writes it.
    pub fn v1(cluster_id: &str, node_id: i32, directory_id: Uuid) -> Self {
        Self {
            version: MetaPropertiesVersion::V1,
            cluster_id: Some(cluster_id.to_string()),
            node_id: Some(node_id),
            directory_id: Some(directory_id),
        }
    }

    /// Parses the text of a file (Java properties) with Kafka's rules.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        Self::from_properties(&load_properties(text)?)
    }

    /// Kafka's `MetaProperties.Builder(Properties).build()`.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Self, ParseError> {
        let version = match props.get(VERSION_PROP) {
            Some(v) => MetaPropertiesVersion::parse(v)?,
            None => MetaPropertiesVersion::V0,
        };
        let int = |key: &'static str| -> Result<i32, ParseError> {
            // Java's Integer.parseInt: no surrounding whitespace.
            props
                .get(key)
                .ok_or(ParseError::Missing(key))?
                .parse()
                .map_err(|_| ParseError::NotANumber(key))
        };
        let node_id = match version {
            MetaPropertiesVersion::V0 if props.contains_key(BROKER_ID_PROP) => {
                Some(int(BROKER_ID_PROP)?)
            }
            MetaPropertiesVersion::V0 => None,
            MetaPropertiesVersion::V1 => Some(int(NODE_ID_PROP)?),
        };
        let cluster_id = props.get(CLUSTER_ID_PROP).cloned();
        let directory_id = match props.get(DIRECTORY_ID_PROP) {
            Some(v) => Some(
                gregor_storage::partition_metadata::base64url_decode(v)
                    .filter(|_| v.len() <= 24)
                    .map(Uuid::from_bytes)
                    .ok_or_else(|| ParseError::InvalidDirectoryId(v.clone()))?,
            ),
            None => None,
        };
        if version == MetaPropertiesVersion::V1 && cluster_id.is_none() {
            return Err(ParseError::NoClusterId);
        }
        Ok(Self {
            version,
            cluster_id,
            node_id,
            directory_id,
        })
    }

    /// The keys and values the file holds (Kafka's `toProperties`).
    pub fn to_properties(&self) -> BTreeMap<&'static str, String> {
        let mut props = BTreeMap::new();
        props.insert(VERSION_PROP, self.version.number().to_string());
        if let Some(id) = &self.cluster_id {
            props.insert(CLUSTER_ID_PROP, id.clone());
        }
        if let Some(id) = self.node_id {
            let key = match self.version {
                MetaPropertiesVersion::V0 => BROKER_ID_PROP,
                MetaPropertiesVersion::V1 => NODE_ID_PROP,
            };
            props.insert(key, id.to_string());
        }
        if let Some(id) = self.directory_id {
            props.insert(DIRECTORY_ID_PROP, base64_uuid(id));
        }
        props
    }

    /// The file's text, stamped with `now_ms` as Java's `Properties.store` does.
    pub fn render(&self, now_ms: i64) -> String {
        let mut out = format!("#\n#{}\n", java_date(now_ms));
        for (k, v) in self.to_properties() {
            out.push_str(&escape(k, true));
            out.push('=');
            out.push_str(&escape(&v, false));
            out.push('\n');
        }
        out
    }

    /// Reads `<dir>/meta.properties`: `None` when there is none (an empty or
    /// missing dir).
    pub fn read(dir: &Path) -> Result<Option<Self>, MetaPropertiesError> {
        let path = dir.join(META_PROPERTIES_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(MetaPropertiesError::Io { path, source }),
        };
        // Kafka writes UTF-8 but reads ISO-8859-1; accept both.
        let text = String::from_utf8(bytes)
            .unwrap_or_else(|e| e.into_bytes().iter().map(|&b| char::from(b)).collect());
        Self::parse(&text)
            .map(Some)
            .map_err(|source| MetaPropertiesError::Parse { path, source })
    }

    /// Writes `<dir>/meta.properties` atomically, creating `dir` if needed.
    pub fn write(&self, dir: &Path, now_ms: i64) -> Result<(), MetaPropertiesError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| MetaPropertiesError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(META_PROPERTIES_NAME);
        let tmp = dir.join(format!("{META_PROPERTIES_NAME}.tmp"));
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(self.render(now_ms).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io(&tmp))?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))
    }
}

/// Java's `TreeMap.toString` of the properties, as `kafka-storage.sh info`
/// prints them: `{cluster.id=..., directory.id=..., node.id=1, version=1}`.
impl fmt::Display for MetaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs: Vec<String> = self
            .to_properties()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(f, "{{{}}}", pairs.join(", "))
    }
}

/// The `meta.properties` of every dir of a node (Kafka's
/// `MetaPropertiesEnsemble`): which dirs are empty, formatted, or unreadable.
#[derive(Debug)]
pub struct MetaPropertiesEnsemble {
    metadata_log_dir: Option<PathBuf>,
    empty: BTreeSet<PathBuf>,
    errors: BTreeMap<PathBuf, MetaPropertiesError>,
    formatted: BTreeMap<PathBuf, MetaProperties>,
}

impl MetaPropertiesEnsemble {
    /// Reads the file of each dir (`metadata_log_dir` is one of them).
    pub fn load(
        log_dirs: impl IntoIterator<Item = PathBuf>,
        metadata_log_dir: Option<&Path>,
    ) -> Self {
        let mut dirs: BTreeSet<PathBuf> = log_dirs.into_iter().collect();
        dirs.extend(metadata_log_dir.map(Path::to_path_buf));
        let mut ensemble = Self {
            metadata_log_dir: metadata_log_dir.map(Path::to_path_buf),
            empty: BTreeSet::new(),
            errors: BTreeMap::new(),
            formatted: BTreeMap::new(),
        };
        for dir in dirs {
            match MetaProperties::read(&dir) {
                Ok(None) => {
                    ensemble.empty.insert(dir);
                }
                Ok(Some(props)) => {
                    ensemble.formatted.insert(dir, props);
                }
                Err(e) => {
                    ensemble.errors.insert(dir, e);
                }
            }
        }
        ensemble
    }

    /// Dirs without a `meta.properties`.
    pub fn empty_dirs(&self) -> &BTreeSet<PathBuf> {
        &self.empty
    }

    /// Dirs whose `meta.properties` could not be read, and why.
    pub fn error_dirs(&self) -> &BTreeMap<PathBuf, MetaPropertiesError> {
        &self.errors
    }

    /// Formatted dirs and their files.
    pub fn formatted_dirs(&self) -> &BTreeMap<PathBuf, MetaProperties> {
        &self.formatted
    }

    pub fn metadata_log_dir(&self) -> Option<&Path> {
        self.metadata_log_dir.as_deref()
    }

    /// The cluster id the formatted dirs name (the first that names one);
    /// always `Some` after [`Self::open_for_start`].
    pub fn cluster_id(&self) -> Option<&str> {
        self.formatted
            .values()
            .find_map(|p| p.cluster_id.as_deref())
    }

    /// The node id the formatted dirs name (the first that names one).
    pub fn node_id(&self) -> Option<i32> {
        self.formatted.values().find_map(|p| p.node_id)
    }

    /// Kafka's `verify`: the formatted dirs agree on the cluster id (and
    /// name `expected_cluster_id` if given) and on the node id (and name
    /// `expected_node_id` if given); directory ids are distinct and not reserved.
    pub fn verify(
        &self,
        expected_cluster_id: Option<&str>,
        expected_node_id: Option<i32>,
    ) -> Result<(), MetaPropertiesError> {
        let mut cluster_id = expected_cluster_id.map(str::to_string);
        let mut node_id = expected_node_id;
        let mut seen: BTreeMap<Uuid, &Path> = BTreeMap::new();
        for (dir, props) in &self.formatted {
            let path = dir.join(META_PROPERTIES_NAME);
            // A version 1 file always has both ids (`parse` checks).
            if let Some(found) = &props.cluster_id {
                match &cluster_id {
                    None => cluster_id = Some(found.clone()),
                    Some(expected) if expected != found => {
                        return Err(MetaPropertiesError::ClusterIdMismatch {
                            path,
                            expected: expected.clone(),
                            found: found.clone(),
                        })
                    }
                    Some(_) => {}
                }
            }
            if let Some(stored) = props.node_id {
                match node_id {
                    None => node_id = Some(stored),
                    Some(expected) if expected != stored => {
                        return Err(MetaPropertiesError::NodeIdMismatch {
                            path,
                            stored,
                            expected,
                        })
                    }
                    Some(_) => {}
                }
            }
            if let Some(id) = props.directory_id {
                if is_reserved_directory_id(id) {
                    return Err(MetaPropertiesError::ReservedDirectoryId {
                        dir: dir.clone(),
                        id,
                    });
                }
                if let Some(first) = seen.insert(id, dir) {
                    return Err(MetaPropertiesError::DuplicateDirectoryId {
                        id,
                        first: first.to_path_buf(),
                        second: dir.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// A random directory id that is valid and not used by any formatted dir.
    pub fn new_directory_id(&self, rng: &mut dyn RngCore) -> Uuid {
        loop {
            let id = random_uuid(rng);
            if !is_reserved_directory_id(id)
                && !self.formatted.values().any(|p| p.directory_id == Some(id))
            {
                return id;
            }
        }
    }

    /// Writes a version 1 `meta.properties` with a fresh directory id to
    /// every empty dir, calling `before_write` with each dir first (Kafka's
    /// formatter prints there). The dirs become formatted.
    pub fn format_empty_dirs(
        &mut self,
        cluster_id: &str,
        node_id: i32,
        now_ms: i64,
        rng: &mut dyn RngCore,
        before_write: &mut dyn FnMut(&Path),
    ) -> Result<(), MetaPropertiesError> {
        for dir in std::mem::take(&mut self.empty) {
            let props = MetaProperties::v1(cluster_id, node_id, self.new_directory_id(rng));
            before_write(&dir);
            props.write(&dir, now_ms)?;
            self.formatted.insert(dir, props);
        }
        Ok(())
    }

    /// Loads and checks the dirs of a node about to start (Kafka's
    /// `KafkaRaftServer.initializeLogDirs`). Every dir must be formatted, for
    /// one cluster and the configured node id; a missing directory id is
    /// added. A node without a controller quorum configured (see
    /// [`formats_itself`]) first formats its empty dirs, with the cluster id of
    /// its formatted dirs or, on first start, a fresh one.
    ///
    /// Unlike Kafka, which takes a data dir with an unreadable file offline,
    /// any unreadable dir stops the start.
    pub fn open_for_start(
        config: &BrokerConfig,
        now_ms: i64,
        rng: &mut dyn RngCore,
    ) -> Result<Self, MetaPropertiesError> {
        let mut dirs = Self::load(
            config.log_dirs.iter().cloned(),
            Some(&config.metadata_log_dir),
        );
        if let Some(source) = dirs.errors.remove(&config.metadata_log_dir) {
            return Err(MetaPropertiesError::MetadataDirUnreadable {
                dir: config.metadata_log_dir.clone(),
                source: Box::new(source),
            });
        }
        if let Some((_, e)) = dirs.errors.pop_first() {
            return Err(e);
        }
        if !formats_itself(config) && dirs.formatted.is_empty() {
            let list: Vec<String> = dirs.empty.iter().map(|d| d.display().to_string()).collect();
            return Err(MetaPropertiesError::NoneFormatted {
                dirs: list.join(", "),
            });
        }
        dirs.verify(None, Some(config.node_id))?;
        // Version 0 files may lack either id; a starting node needs both.
        for (dir, props) in &dirs.formatted {
            if props.node_id.is_none() {
                return Err(MetaPropertiesError::NoNodeId { dir: dir.clone() });
            }
            if props.cluster_id.is_none() {
                return Err(MetaPropertiesError::NoClusterId { dir: dir.clone() });
            }
        }
        if let Some(dir) = dirs.empty.first() {
            if !formats_itself(config) {
                return Err(MetaPropertiesError::Unformatted { dir: dir.clone() });
            }
            let cluster_id = match dirs.cluster_id() {
                Some(id) => id.to_string(),
                None => base64_uuid(random_uuid(rng)),
            };
            dirs.format_empty_dirs(&cluster_id, config.node_id, now_ms, rng, &mut |dir| {
                tracing::info!(dir = %dir.display(), %cluster_id, "formatting log directory");
            })?;
        }
        let missing: Vec<PathBuf> = dirs
            .formatted
            .iter()
            .filter(|(_, p)| p.directory_id.is_none())
            .map(|(d, _)| d.clone())
            .collect();
        for dir in missing {
            let id = dirs.new_directory_id(rng);
            let props = dirs.formatted.get_mut(&dir).expect("listed above");
            props.directory_id = Some(id);
            tracing::info!(dir = %dir.display(), "rewriting meta.properties with a directory id");
            props.write(&dir, now_ms)?;
        }
        Ok(dirs)
    }
}

/// Whether a node formats its own empty dirs: only when its config names no
/// controller quorum (neither `controller.quorum.voters` nor
/// `controller.quorum.bootstrap.servers`), the embedded single-node default.
/// With a quorum named, the dirs must be formatted by `gregor storage format`
/// with the cluster's id, as in Kafka.
pub fn formats_itself(config: &BrokerConfig) -> bool {
    [
        "controller.quorum.voters",
        "controller.quorum.bootstrap.servers",
    ]
    .iter()
    .all(|k| config.props.get(*k).is_none_or(|v| v.trim().is_empty()))
}

/// Kafka's `Uuid.randomUuid()`: a version 4 UUID whose text does not start
/// with `-` (it would read as a flag) and which is neither 0 nor 1 (the
/// metadata topic's id).
pub fn random_uuid(rng: &mut dyn RngCore) -> Uuid {
    loop {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        if id.as_u128() > 1 && !base64_uuid(id).starts_with('-') {
            return id;
        }
    }
}

/// The operating system's randomness, for callers without an RNG of their own.
pub fn system_rng() -> rand::rngs::ThreadRng {
    rand::thread_rng()
}

/// Kafka's `DirectoryId.reserved`: the first 100 ids mean "unassigned",
/// "lost" and so on, never a real directory.
pub fn is_reserved_directory_id(id: Uuid) -> bool {
    id.as_u128() < 100
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    fn config(pairs: &[(&str, &str)]) -> BrokerConfig {
        BrokerConfig::from_props(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn reads_a_file_kafka_wrote() {
        // As Kafka 3.7+ on JDK 17 writes it (hash order).
        let text = "#\n#Tue Mar 05 10:23:12 UTC 2024\nnode.id=1\n\
                    directory.id=kVSHbEiOQHOX7SEBZTCsUw\nversion=1\ncluster.id=4L6g3nShT-eMCtK--X86Aw\n";
        let p = MetaProperties::parse(text).unwrap();
        assert_eq!(p.version, MetaPropertiesVersion::V1);
        assert_eq!(p.cluster_id.as_deref(), Some("4L6g3nShT-eMCtK--X86Aw"));
        assert_eq!(p.node_id, Some(1));
        assert_eq!(
            p.directory_id.map(base64_uuid).as_deref(),
            Some("kVSHbEiOQHOX7SEBZTCsUw")
        );
        assert_eq!(
            p.to_string(),
            "{cluster.id=4L6g3nShT-eMCtK--X86Aw, directory.id=kVSHbEiOQHOX7SEBZTCsUw, node.id=1, version=1}"
        );
    }

    #[test]
    fn renders_as_java_properties_store() {
        let p = MetaProperties::v1("abc", 3, Uuid::from_u128(1000));
        // 2024-10-24T19:33:01Z, a Thursday.
        assert_eq!(
            p.render(1_729_798_381_000),
            "#\n#Thu Oct 24 19:33:01 UTC 2024\ncluster.id=abc\ndirectory.id=AAAAAAAAAAAAAAAAAAAD6A\nnode.id=3\nversion=1\n"
        );
        assert_eq!(MetaProperties::parse(&p.render(0)).unwrap(), p);
    }

    #[test]
    fn awkward_cluster_ids_round_trip() {
        // Kafka takes any string as a cluster id; Properties escapes it.
        for id in ["a=b:c", " lead", "#x!", "tab\there", "back\\slash", "ünï"] {
            let p = MetaProperties::v1(id, 1, Uuid::from_u128(500));
            assert_eq!(MetaProperties::parse(&p.render(0)).unwrap(), p, "{id:?}");
        }
    }

    #[test]
    fn invalid_files() {
        let err = |t: &str| MetaProperties::parse(t).unwrap_err().to_string();
        assert_eq!(
            err("version=2\nnode.id=1\ncluster.id=x\n"),
            "Unknown meta.properties version number 2"
        );
        assert_eq!(
            err("version=one\n"),
            "Invalid meta.properties version string 'one'"
        );
        assert_eq!(err("version=1\ncluster.id=x\n"), "Failed to find node.id");
        assert_eq!(
            err("version=1\nnode.id=x\ncluster.id=x\n"),
            "Unable to read node.id as a base-10 number."
        );
        assert_eq!(err("version=1\nnode.id=1\n"), "cluster.id was not found.");
        assert!(
            err("version=1\nnode.id=1\ncluster.id=x\ndirectory.id=nope\n")
                .starts_with("Unable to read directory.id as a Uuid")
        );
        // Version 0 (ZooKeeper era): broker.id, everything optional.
        let v0 = MetaProperties::parse("broker.id=4\n").unwrap();
        assert_eq!(v0.version, MetaPropertiesVersion::V0);
        assert_eq!((v0.node_id, v0.cluster_id.as_deref()), (Some(4), None));
        assert_eq!(v0.to_string(), "{broker.id=4, version=0}");
    }

    fn write(dir: &Path, cluster: &str, node: i32, id: u128) {
        MetaProperties::v1(cluster, node, Uuid::from_u128(id))
            .write(dir, 0)
            .unwrap();
    }

    #[test]
    fn ensemble_sorts_dirs_and_verifies() {
        let root = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            root.path().join("a"),
            root.path().join("b"),
            root.path().join("c"),
        );
        write(&a, "C1", 1, 1000);
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join(META_PROPERTIES_NAME), "version=7\n").unwrap();
        let e = MetaPropertiesEnsemble::load([a.clone(), b.clone()], Some(&c));
        assert_eq!(e.empty_dirs().iter().collect::<Vec<_>>(), [&c]);
        assert_eq!(e.formatted_dirs().keys().collect::<Vec<_>>(), [&a]);
        assert!(e.error_dirs()[&b]
            .to_string()
            .ends_with("meta.properties: Unknown meta.properties version number 7"));
        assert_eq!((e.cluster_id(), e.node_id()), (Some("C1"), Some(1)));
        e.verify(Some("C1"), Some(1)).unwrap();
        assert!(matches!(
            e.verify(Some("C2"), None),
            Err(MetaPropertiesError::ClusterIdMismatch { .. })
        ));
        assert!(matches!(
            e.verify(None, Some(2)),
            Err(MetaPropertiesError::NodeIdMismatch {
                stored: 1,
                expected: 2,
                ..
            })
        ));
    }

    #[test]
    fn ensemble_rejects_mismatched_dirs() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        let load = || MetaPropertiesEnsemble::load([a.clone(), b.clone()], None);
        write(&a, "C1", 1, 1000);
        write(&b, "C2", 1, 1001);
        let e = load().verify(None, None).unwrap_err().to_string();
        assert!(e.starts_with("Invalid cluster.id in: "), "{e}");
        assert!(
            e.ends_with("b/meta.properties. Expected C1, but read C2"),
            "{e}"
        );
        write(&b, "C1", 2, 1001);
        let e = load().verify(None, None).unwrap_err().to_string();
        assert!(
            e.starts_with("Stored node id 2 doesn't match previous node id 1 in "),
            "{e}"
        );
        write(&b, "C1", 1, 1000);
        let e = load().verify(None, None).unwrap_err().to_string();
        assert!(
            e.starts_with("Duplicate directory ID AAAAAAAAAAAAAAAAAAAD6A found."),
            "{e}"
        );
        write(&b, "C1", 1, 99);
        assert!(matches!(
            load().verify(None, None),
            Err(MetaPropertiesError::ReservedDirectoryId { .. })
        ));
        write(&b, "C1", 1, 1001);
        load().verify(None, Some(1)).unwrap();
    }

    #[test]
    fn embedded_node_formats_itself_once() {
        let root = tempfile::tempdir().unwrap();
        let (a, m) = (root.path().join("a"), root.path().join("meta"));
        let c = config(&[
            ("log.dirs", a.to_str().unwrap()),
            ("metadata.log.dir", m.to_str().unwrap()),
            ("node.id", "5"),
        ]);
        assert!(formats_itself(&c));
        let first = MetaPropertiesEnsemble::open_for_start(&c, 0, &mut rng()).unwrap();
        let cluster = first.cluster_id().unwrap().to_string();
        assert_eq!(cluster.len(), 22);
        let pa = MetaProperties::read(&a).unwrap().unwrap();
        let pm = MetaProperties::read(&m).unwrap().unwrap();
        assert_eq!(pa.cluster_id, pm.cluster_id);
        assert_eq!((pa.node_id, pm.node_id), (Some(5), Some(5)));
        assert_ne!(pa.directory_id, pm.directory_id);
        // Restart: same identity, files untouched.
        let again = MetaPropertiesEnsemble::open_for_start(&c, 1, &mut rng()).unwrap();
        assert_eq!(again.cluster_id().unwrap(), cluster);
        assert_eq!(MetaProperties::read(&a).unwrap().unwrap(), pa);
        // A new, empty dir joins the existing cluster.
        let b = root.path().join("b");
        let c2 = config(&[
            ("log.dirs", &format!("{},{}", a.display(), b.display())),
            ("metadata.log.dir", m.to_str().unwrap()),
            ("node.id", "5"),
        ]);
        MetaPropertiesEnsemble::open_for_start(&c2, 2, &mut rng()).unwrap();
        let pb = MetaProperties::read(&b).unwrap().unwrap();
        assert_eq!(pb.cluster_id.as_deref(), Some(cluster.as_str()));
        // Another node id on the same dirs is refused.
        let other = config(&[("log.dirs", a.to_str().unwrap()), ("node.id", "6")]);
        let e = MetaPropertiesEnsemble::open_for_start(&other, 3, &mut rng()).unwrap_err();
        assert!(matches!(
            e,
            MetaPropertiesError::NodeIdMismatch {
                stored: 5,
                expected: 6,
                ..
            }
        ));
    }

    #[test]
    fn quorum_node_needs_formatted_dirs() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        let dirs = format!("{},{}", a.display(), b.display());
        let c = config(&[
            ("log.dirs", &dirs),
            ("process.roles", "broker,controller"),
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            ),
            ("controller.listener.names", "CONTROLLER"),
        ]);
        assert!(!formats_itself(&c));
        let e = MetaPropertiesEnsemble::open_for_start(&c, 0, &mut rng()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("No readable meta.properties files found in "),
            "{e}"
        );
        assert!(!a.exists(), "a quorum node must not format itself");
        write(&a, "C1", 1, 1000);
        let e = MetaPropertiesEnsemble::open_for_start(&c, 0, &mut rng()).unwrap_err();
        assert!(
            matches!(&e, MetaPropertiesError::Unformatted { dir } if *dir == b),
            "{e}"
        );
        // Formatted without a directory id (as Kafka before 3.7): one is added.
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(
            b.join(META_PROPERTIES_NAME),
            "version=1\ncluster.id=C1\nnode.id=1\n",
        )
        .unwrap();
        let ok = MetaPropertiesEnsemble::open_for_start(&c, 0, &mut rng()).unwrap();
        assert_eq!(ok.cluster_id().unwrap(), "C1");
        let pb = MetaProperties::read(&b).unwrap().unwrap();
        assert!(pb
            .directory_id
            .is_some_and(|id| id != Uuid::from_u128(1000)));
        // The bootstrap-servers form of a quorum counts too.
        let c = config(&[
            ("log.dirs", &dirs),
            ("controller.quorum.bootstrap.servers", "127.0.0.1:9093"),
        ]);
        assert!(!formats_itself(&c));
    }

    #[test]
    fn unreadable_metadata_dir_stops_the_start() {
        let root = tempfile::tempdir().unwrap();
        let m = root.path().join("m");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join(META_PROPERTIES_NAME), "version=1\nnode.id=1\n").unwrap();
        let c = config(&[("log.dirs", m.to_str().unwrap())]);
        let e = MetaPropertiesEnsemble::open_for_start(&c, 0, &mut rng()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Encountered I/O error in metadata log directory"),
            "{e}"
        );
    }

    #[test]
    fn random_uuids_follow_kafkas_rules() {
        let mut r = rng();
        for _ in 0..2000 {
            let id = random_uuid(&mut r);
            let text = base64_uuid(id);
            assert_eq!(text.len(), 22);
            assert!(!text.starts_with('-'));
            assert_eq!(id.get_version_num(), 4);
        }
    }
}
