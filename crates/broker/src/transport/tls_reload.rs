//! Certificate reload on SSL and SASL_SSL listeners, as Kafka does it.
//!
//! Each TLS listener serves through a [`ReloadableAcceptor`]: a new
//! connection takes the acceptor current when it arrives; a connection
//! already open keeps the one it was accepted with, so a reload never
//! touches a running session.
//!
//! The acceptor is rebuilt from the listener's `ssl.*` settings merged over
//! three layers (static `server.properties`, then the cluster-wide dynamic
//! default, then this broker's dynamic configs: Kafka's precedence, with a
//! `listener.name.<l>.` key over the plain one whichever layer it is in):
//!
//! * when a broker config record reaches this broker's metadata image
//!   (`Broker::reconcile` wakes [`run`]), so an alteration works in a
//!   cluster and after a restart; the files are re-read, so altering a
//!   config to the same path reloads a keystore whose content changed (as
//!   Kafka does);
//! * every `gregor.ssl.keystore.reload.interval.ms` (Gregor's key, default
//!   60000, 0 disables): the keystore and truststore files whose
//!   modification time changed are read, and the acceptor is rebuilt when
//!   their content changed and the new material loads.
//!
//! The node's own outgoing links (inter-broker, to the controllers) and
//! the controller listener reload the same way ([`Reloadable`] over a
//! connector or an acceptor), so a cluster whose brokers authenticate each
//! other with certificates survives a rotation: a link opened after the
//! reload presents the new certificate; links already open keep theirs.
//!
//! AlterConfigs and IncrementalAlterConfigs check a change first
//! ([`validate_change`]): the new settings must build a server config, else
//! the request is refused (INVALID_REQUEST, with Kafka's message) and the
//! old acceptor stays.
//!
//! As in Kafka, the new certificate must name the same subject DN and keep
//! every subject alternative name of the old one (`ssl.allow.dn.changes`,
//! `ssl.allow.san.changes`, both false by default): an alteration that
//! breaks this is refused with Kafka's message, a file change is logged
//! and the old certificate stays in service.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gregor_metadata::config_defs::strip_listener_prefix;
use gregor_metadata::{ConfigResource, MetadataImage};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::tls::{CertIdentity, Keystore, PemSource, TlsError, TlsSettings};
use crate::broker::Broker;

/// What one file looked like when it was last read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    path: PathBuf,
    modified: Option<SystemTime>,
    /// A hash of the content (change detection, not security).
    content: Option<u64>,
}

/// The material an acceptor was built from: the settings that shape it and
/// the files it read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Material {
    settings: String,
    files: Vec<FileStamp>,
}

impl Material {
    fn of(settings: &TlsSettings, read: bool) -> Self {
        let mut paths = Vec::new();
        if let Some(Keystore::File(p)) = &settings.keystore {
            paths.push(p.clone());
        }
        if let Some(PemSource::File(p)) = &settings.truststore {
            paths.push(p.clone());
        }
        let files = paths
            .into_iter()
            .map(|path| FileStamp {
                modified: std::fs::metadata(&path).and_then(|m| m.modified()).ok(),
                content: read.then(|| hash_file(&path)).flatten(),
                path,
            })
            .collect();
        Self {
            settings: shape(settings),
            files,
        }
    }

    /// Same settings and same modification times: nothing to read.
    fn same_stamps(&self, other: &Material) -> bool {
        self.settings == other.settings
            && self.files.len() == other.files.len()
            && self
                .files
                .iter()
                .zip(&other.files)
                .all(|(a, b)| a.path == b.path && a.modified == b.modified)
    }

    /// Same settings and same file contents.
    fn same_content(&self, other: &Material) -> bool {
        self.settings == other.settings
            && self.files.len() == other.files.len()
            && self
                .files
                .iter()
                .zip(&other.files)
                .all(|(a, b)| a.path == b.path && a.content == b.content)
    }
}

fn hash_file(path: &std::path::Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

/// The settings that shape a server config (passwords included, hashed).
fn shape(s: &TlsSettings) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!("{:?}", s.keystore).hash(&mut h);
    s.key_password.as_ref().map(|p| p.0.clone()).hash(&mut h);
    format!("{:?}", s.truststore).hash(&mut h);
    format!(
        "{:?}/{}/{}/{:?}",
        s.client_auth, s.tls12, s.tls13, s.cipher_suites
    )
    .hash(&mut h);
    format!("{:x}", h.finish())
}

/// One listener's TLS side, replaceable while it is in use: a listener's
/// acceptor ([`ReloadableAcceptor`]) or this node's connector to another
/// node's listener ([`ReloadableConnector`]).
pub struct Reloadable<T> {
    listener: String,
    current: RwLock<Arc<T>>,
    /// What `current` was built from.
    loaded: Mutex<Material>,
    /// Who `current`'s certificate names (a reload must keep it, unless
    /// `ssl.allow.dn.changes` / `ssl.allow.san.changes`).
    identity: Mutex<Option<CertIdentity>>,
    /// The last material that failed to load (warned about once).
    failed: Mutex<Option<Material>>,
    build: fn(&TlsSettings) -> Result<T, TlsError>,
}

/// A TLS listener's acceptor: a new connection takes the one current when
/// it arrives.
pub type ReloadableAcceptor = Reloadable<TlsAcceptor>;

/// The TLS side of this node's links to a listener of other nodes (the
/// inter-broker and controller listeners): a new link presents the
/// keystore current when it is opened.
pub type ReloadableConnector = Reloadable<TlsConnector>;

/// What [`Reloadable::refresh`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    Unchanged,
    Reloaded,
    /// The changed material still does not load (its error was returned
    /// once already); the old acceptor stays.
    Failed,
}

impl Reloadable<TlsAcceptor> {
    /// Loads the listener's material (at bind: a failure stops the start).
    pub fn new(settings: &TlsSettings) -> Result<Self, TlsError> {
        Self::with(settings, |s| Ok(TlsAcceptor::from(s.server_config()?)))
    }

    /// The acceptor a new connection uses.
    pub fn acceptor(&self) -> Arc<TlsAcceptor> {
        self.current()
    }
}

impl Reloadable<TlsConnector> {
    /// Loads this node's client side of a listener (a failure stops the start).
    pub fn connector(settings: &TlsSettings) -> Result<Self, TlsError> {
        Self::with(settings, |s| Ok(TlsConnector::from(s.client_config()?)))
    }
}

impl<T> Reloadable<T> {
    fn with(
        settings: &TlsSettings,
        build: fn(&TlsSettings) -> Result<T, TlsError>,
    ) -> Result<Self, TlsError> {
        let material = Material::of(settings, true);
        let built = build(settings)?;
        let identity = settings.keystore_identity()?;
        Ok(Self {
            listener: settings.listener.clone(),
            current: RwLock::new(Arc::new(built)),
            loaded: Mutex::new(material),
            identity: Mutex::new(identity),
            failed: Mutex::new(None),
            build,
        })
    }

    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// What a new connection uses.
    pub fn current(&self) -> Arc<T> {
        self.current.read().clone()
    }

    /// Who the certificate in use names.
    pub fn identity(&self) -> Option<CertIdentity> {
        self.identity.lock().clone()
    }

    /// Rebuilds when `settings` or the files they name changed.
    /// `read_all`: read the files even when their modification time is
    /// unchanged (a config alteration); else only files whose time moved.
    /// A failure (unloadable material, or a certificate naming another
    /// subject than the current one when that is not allowed) keeps the
    /// old one; the error is returned the first time a given material
    /// fails, `Ok(Refresh::Failed)` after that.
    pub fn refresh(&self, settings: &TlsSettings, read_all: bool) -> Result<Refresh, TlsError> {
        let mut loaded = self.loaded.lock();
        if !read_all && Material::of(settings, false).same_stamps(&loaded) {
            return Ok(Refresh::Unchanged);
        }
        let now = Material::of(settings, true);
        if now.same_content(&loaded) {
            // Touched but equal: remember the new times, keep what serves.
            *loaded = now;
            return Ok(Refresh::Unchanged);
        }
        let built = (self.build)(settings).and_then(|built| {
            let identity = settings.keystore_identity()?;
            if let (Some(old), Some(new)) = (self.identity.lock().as_ref(), identity.as_ref()) {
                settings
                    .ensure_compatible(old, new)
                    .map_err(|reason| TlsError::Pem {
                        listener: self.listener.clone(),
                        what: "ssl.keystore".into(),
                        reason,
                    })?;
            }
            Ok((built, identity))
        });
        match built {
            Ok((built, identity)) => {
                *self.current.write() = Arc::new(built);
                *self.identity.lock() = identity;
                *loaded = now;
                *self.failed.lock() = None;
                Ok(Refresh::Reloaded)
            }
            Err(e) => {
                let mut failed = self.failed.lock();
                if failed.as_ref().is_some_and(|f| f.same_content(&now)) {
                    return Ok(Refresh::Failed);
                }
                *failed = Some(now);
                Err(e)
            }
        }
    }
}

/// The broker's settings with the dynamic layers over the static ones;
/// `change` replaces or deletes keys of one dynamic layer first (a change
/// being validated).
pub fn effective_props(
    broker: &Broker,
    image: &MetadataImage,
    change: Option<(&ConfigResource, &BTreeMap<String, Option<String>>)>,
) -> BTreeMap<String, String> {
    let mut props = broker.config.props.clone();
    for resource in [
        ConfigResource::Broker(String::new()),
        ConfigResource::Broker(broker.node_id().to_string()),
    ] {
        let mut layer: BTreeMap<String, String> =
            image.configs(&resource).cloned().unwrap_or_default();
        if let Some((_, changes)) = change.filter(|(r, _)| **r == resource) {
            for (k, v) in changes {
                match v {
                    Some(v) => layer.insert(k.clone(), v.clone()),
                    None => layer.remove(k),
                };
            }
        }
        props.extend(layer);
    }
    props
}

/// The acceptor a listener starts with: its settings with the dynamic
/// configs already in the image (after a restart, the altered keystore is
/// served from the first connection, as Kafka applies dynamic configs
/// before it opens its listeners). When those do not load, the static
/// settings are used and the failure is logged; when the static ones do
/// not load either, the start fails.
pub fn bind(broker: &Broker, settings: &TlsSettings) -> Result<ReloadableAcceptor, TlsError> {
    let props = effective_props(broker, &broker.metadata.image(), None);
    let dynamic = TlsSettings::from_props(&props, &settings.listener)
        .map_err(|e| e.to_string())
        .and_then(|s| ReloadableAcceptor::new(&s).map_err(|e| e.to_string()));
    match dynamic {
        Ok(acceptor) => Ok(acceptor),
        Err(e) => {
            tracing::warn!(
                listener = %settings.listener,
                error = %e,
                "the dynamic SSL configs do not load; starting with the static ones"
            );
            ReloadableAcceptor::new(settings)
        }
    }
}

/// Whether a config name is an `ssl.*` setting (plain or per listener).
fn is_ssl_key(name: &str) -> bool {
    strip_listener_prefix(name)
        .unwrap_or(name)
        .starts_with("ssl.")
}

/// Checks an alteration of a broker resource that touches `ssl.*`: every
/// TLS listener of this broker must load its material with the change
/// applied. The message is Kafka's, which answers INVALID_REQUEST.
pub fn validate_change(
    broker: &Broker,
    resource: &ConfigResource,
    changes: &BTreeMap<String, Option<String>>,
) -> Result<(), String> {
    if !matches!(resource, ConfigResource::Broker(_)) || !changes.keys().any(|k| is_ssl_key(k)) {
        return Ok(());
    }
    let image = broker.metadata.image();
    let props = effective_props(broker, &image, Some((resource, changes)));
    let before = effective_props(broker, &image, None);
    for l in broker.config.listeners.iter().filter(|l| l.tls.is_some()) {
        let name = &l.listener.name;
        let checked = TlsSettings::from_props(&props, name)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                s.server_config().map_err(|e| e.to_string())?;
                // The certificate served now (else the one the current
                // settings name; unreadable: nothing to keep).
                let served = broker
                    .tls_listeners
                    .lock()
                    .iter()
                    .find(|a| a.listener() == name.as_str())
                    .map(|a| a.identity());
                let old = served.unwrap_or_else(|| {
                    TlsSettings::from_props(&before, name)
                        .ok()
                        .and_then(|b| b.keystore_identity().ok().flatten())
                });
                match (old, s.keystore_identity().map_err(|e| e.to_string())?) {
                    (Some(old), Some(new)) => s.ensure_compatible(&old, &new).map_err(|reason| {
                        format!("org.apache.kafka.common.config.ConfigException: {reason}")
                    }),
                    _ => Ok(()),
                }
            });
        if let Err(reason) = checked {
            let name = match resource {
                ConfigResource::Broker(name) => name.as_str(),
                _ => "",
            };
            return Err(format!(
                "Invalid config value for resource ConfigResource(type=BROKER, name='{name}'): \
                 Validation of dynamic config update of SSLFactory failed: {reason}"
            ));
        }
    }
    Ok(())
}

/// Rebuilds every listener and every outgoing link whose material changed
/// (blocking: reads files). `listeners`: the client listeners' acceptors;
/// the links are the inter-broker connector and the quorum's (its
/// connector to the controllers and, on a controller, its listener).
pub fn refresh_all(broker: &Broker, listeners: &[Arc<ReloadableAcceptor>], read_all: bool) {
    let image = broker.metadata.image();
    let props = effective_props(broker, &image, None);
    let mut acceptors = listeners.to_vec();
    let mut connectors: Vec<Arc<ReloadableConnector>> =
        broker.inter_broker_connector.tls().into_iter().collect();
    if let Some(quorum) = broker.metadata.quorum() {
        let (a, c) = quorum.tls_reloadables();
        acceptors.extend(a);
        connectors.extend(c);
    }
    for l in &acceptors {
        let outcome = TlsSettings::from_props(&props, l.listener())
            .map_err(|e| e.to_string())
            .and_then(|s| l.refresh(&s, read_all).map_err(|e| e.to_string()));
        report(l.listener(), "listener", outcome);
    }
    for c in &connectors {
        // Whether or not this node serves the listener, its keystore is
        // what it presents and its truststore what it trusts.
        let outcome = TlsSettings::client_from_props(&props, c.listener())
            .map_err(|e| e.to_string())
            .and_then(|s| c.refresh(&s, read_all).map_err(|e| e.to_string()));
        report(c.listener(), "outgoing links", outcome);
    }
}

fn report(listener: &str, side: &'static str, outcome: Result<Refresh, String>) {
    match outcome {
        Ok(Refresh::Reloaded) => {
            tracing::info!(listener, side, "SSL keystore/truststore reloaded")
        }
        Ok(Refresh::Unchanged | Refresh::Failed) => {}
        Err(e) => tracing::warn!(
            listener,
            side,
            error = %e,
            "SSL keystore/truststore changed but does not load or is refused; still using the previous one"
        ),
    }
}

/// The one reload task of a node: wakes when broker configs reach the
/// image and every `gregor.ssl.keystore.reload.interval.ms`.
pub async fn run(
    broker: Arc<Broker>,
    listeners: Vec<Arc<ReloadableAcceptor>>,
    mut stop: watch::Receiver<bool>,
) {
    let links_use_tls = broker.config.inter_broker_link.tls.is_some()
        || broker
            .config
            .controller_link
            .as_ref()
            .is_some_and(|l| l.security.tls.is_some());
    if listeners.is_empty() && !links_use_tls {
        return;
    }
    let period = broker.config.ssl_reload_interval_ms;
    let mut ticks = (period > 0).then(|| {
        let mut t = tokio::time::interval(Duration::from_millis(period));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let listeners = Arc::new(listeners);
    loop {
        let read_all = tokio::select! {
            _ = stop.changed() => return,
            _ = broker.tls_configs_changed.notified() => true,
            _ = tick(&mut ticks) => false,
        };
        let (b, ls) = (broker.clone(), listeners.clone());
        let _ = tokio::task::spawn_blocking(move || refresh_all(&b, &ls, read_all)).await;
    }
}

/// The next tick, or never when the files are not watched.
async fn tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(path: &std::path::Path) -> TlsSettings {
        settings_with(path, &[])
    }

    fn settings_with(path: &std::path::Path, extra: &[(&str, &str)]) -> TlsSettings {
        let props: BTreeMap<String, String> = [
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", path.to_str().unwrap()),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        TlsSettings::from_props(&props, "SSL").unwrap()
    }

    /// A self-signed keystore (key and certificate PEM) for `cn` naming `sans`.
    fn generated(cn: &str, sans: &[&str]) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap();
        format!("{}{}", key.serialize_pem(), cert.pem())
    }

    /// Two self-signed P-256 keystores (key and certificate, CN=one / CN=two;
    /// `openssl req -x509 -newkey ec -nodes -days 36500`).
    const ONE: &str = r#"-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg8RDrQC9TE9Jm9Jmm
ypAfziHZFUjSeZm6beAtkIZBUCqhRANCAAQvVwGuEm4lvj618AmgBdt0di/JX69Y
XjQmlv/uDhvr5Gz193kkaMGhvYkxyhL9Ov/YcXNHpJSHrNlT5F/H86z7
-----END PRIVATE KEY-----
-----BEGIN CERTIFICATE-----
MIIBcjCCARmgAwIBAgIUFeSuCqJa7TNPwzhFaaMfjzI+KdgwCgYIKoZIzj0EAwIw
DjEMMAoGA1UEAwwDb25lMCAXDTI2MTIwNTA0MDkxNFoYDzIxMjYxMTExMDQwOTE0
WjAOMQwwCgYDVQQDDANvbmUwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQvVwGu
Em4lvj618AmgBdt0di/JX69YXjQmlv/uDhvr5Gz193kkaMGhvYkxyhL9Ov/YcXNH
pJSHrNlT5F/H86z7o1MwUTAdBgNVHQ4EFgQUR7EGg5irFzwryzcs11umj5kjrvsw
HwYDVR0jBBgwFoAUR7EGg5irFzwryzcs11umj5kjrvswDwYDVR0TAQH/BAUwAwEB
/zAKBggqhkjOPQQDAgNHADBEAiBV2flCL8VxmHPV9AMDyyXiRZNH0RxqCfRjtZyQ
3I7imQIgLOvN46ExRrAwx1lShkaodutIXKPSQGfA1Bo8ubN8dTY=
-----END CERTIFICATE-----
"#;
    const TWO: &str = r#"-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgfxRP6gCngiXwknQz
pKLyPtOwfIbGwWqQwbdh8RdCQn2hRANCAAR7IV/zDOhnZpqU4FD+i65tySYl5bjs
k54Z7bepkyL7lVrZ0FlI6FfBifq9lZwgc1uhvXQfoJSDkC+yQtDLaAT3
-----END PRIVATE KEY-----
-----BEGIN CERTIFICATE-----
MIIBdDCCARmgAwIBAgIUfAfGtBJNoG1L9OVu4z0EdF0kK7cwCgYIKoZIzj0EAwIw
DjEMMAoGA1UEAwwDdHdvMCAXDTI2MTIwNTA0MDkxNFoYDzIxMjYxMTExMDQwOTE0
WjAOMQwwCgYDVQQDDAN0d28wWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAR7IV/z
DOhnZpqU4FD+i65tySYl5bjsk54Z7bepkyL7lVrZ0FlI6FfBifq9lZwgc1uhvXQf
oJSDkC+yQtDLaAT3o1MwUTAdBgNVHQ4EFgQUD9ih7k56w695AAsam98hvT1fxRow
HwYDVR0jBBgwFoAUD9ih7k56w695AAsam98hvT1fxRowDwYDVR0TAQH/BAUwAwEB
/zAKBggqhkjOPQQDAgNJADBGAiEAmsuhZ21p/7UlgRE2Dft6S+qegidyp2Lc+qci
rzFFwN4CIQDhrdIo/HURGNCOhInkYkkRxlU19EOCmJ8wXCJFaWDZxA==
-----END CERTIFICATE-----
"#;

    fn keystore(name: &str) -> &'static str {
        match name {
            "one" | "three" => ONE,
            _ => TWO,
        }
    }

    #[test]
    fn swaps_on_change_keeps_old_on_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ks.pem");
        std::fs::write(&path, keystore("one")).unwrap();
        // ONE and TWO name different subjects: allowed here.
        let s = settings_with(&path, &[("ssl.allow.dn.changes", "true")]);
        let r = ReloadableAcceptor::new(&s).unwrap();
        let first = r.acceptor();
        // Nothing changed.
        assert_eq!(r.refresh(&s, true).unwrap(), Refresh::Unchanged);
        assert!(Arc::ptr_eq(&first, &r.acceptor()));
        // New content: a new acceptor; the old one lives on with its holders.
        std::fs::write(&path, keystore("two")).unwrap();
        assert_eq!(r.refresh(&s, true).unwrap(), Refresh::Reloaded);
        let second = r.acceptor();
        assert!(!Arc::ptr_eq(&first, &second));
        // Garbage: refused once with the reason, then quietly; old acceptor stays.
        std::fs::write(&path, "not a pem").unwrap();
        assert!(r.refresh(&s, true).is_err());
        assert_eq!(r.refresh(&s, true).unwrap(), Refresh::Failed);
        assert!(Arc::ptr_eq(&second, &r.acceptor()));
        // Fixed again: loads.
        std::fs::write(&path, keystore("three")).unwrap();
        assert_eq!(r.refresh(&s, true).unwrap(), Refresh::Reloaded);
    }

    #[test]
    fn a_new_subject_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ks.pem");
        std::fs::write(&path, keystore("one")).unwrap();
        let s = settings(&path);
        let r = ReloadableAcceptor::new(&s).unwrap();
        let first = r.acceptor();
        std::fs::write(&path, keystore("two")).unwrap();
        let e = r.refresh(&s, true).unwrap_err().to_string();
        assert!(
            e.contains(
                "Keystore DistinguishedName does not match:  existing={alias=kafka, DN=CN=one}, \
                 new={alias=kafka, DN=CN=two}"
            ),
            "{e}"
        );
        assert!(
            Arc::ptr_eq(&first, &r.acceptor()),
            "the old certificate stays"
        );
        assert_eq!(r.refresh(&s, true).unwrap(), Refresh::Failed);
        let allowed = settings_with(&path, &[("ssl.allow.dn.changes", "true")]);
        assert_eq!(r.refresh(&allowed, true).unwrap(), Refresh::Reloaded);
    }

    #[test]
    fn subject_alt_names_may_grow_not_shrink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ks.pem");
        std::fs::write(&path, generated("broker", &["localhost", "127.0.0.1"])).unwrap();
        let s = settings(&path);
        let r = ReloadableAcceptor::new(&s).unwrap();
        // Same names, new key: a rotation.
        std::fs::write(&path, generated("broker", &["127.0.0.1", "localhost"])).unwrap();
        assert_eq!(r.refresh(&s, true).unwrap(), Refresh::Reloaded);
        // One more name: allowed.
        std::fs::write(
            &path,
            generated("broker", &["localhost", "127.0.0.1", "b1.example"]),
        )
        .unwrap();
        assert_eq!(r.refresh(&s, true).unwrap(), Refresh::Reloaded);
        // A name dropped: refused, with Java's rendering of both sets.
        let kept = r.acceptor();
        std::fs::write(&path, generated("broker", &["localhost"])).unwrap();
        let e = r.refresh(&s, true).unwrap_err().to_string();
        assert!(
            e.contains(
                "Keystore SubjectAltNames do not match:  existing={alias=kafka, \
                 SAN=[[2, b1.example], [2, localhost], [7, 127.0.0.1]]}, \
                 new={alias=kafka, SAN=[[2, localhost]]}"
            ),
            "{e}"
        );
        assert!(Arc::ptr_eq(&kept, &r.acceptor()));
        let allowed = settings_with(&path, &[("ssl.allow.san.changes", "true")]);
        assert_eq!(r.refresh(&allowed, true).unwrap(), Refresh::Reloaded);
        // The DN is still checked: a SAN allowance is not a DN one.
        std::fs::write(&path, generated("intruder", &["localhost"])).unwrap();
        assert!(r.refresh(&allowed, true).is_err());
    }

    #[test]
    fn a_missing_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ks.pem");
        std::fs::write(&path, keystore("one")).unwrap();
        let r = ReloadableAcceptor::new(&settings(&path)).unwrap();
        let first = r.acceptor();
        let gone = settings(&dir.path().join("missing.pem"));
        assert!(r.refresh(&gone, false).is_err());
        assert!(Arc::ptr_eq(&first, &r.acceptor()));
    }

    #[test]
    fn ssl_keys() {
        assert!(is_ssl_key("ssl.keystore.location"));
        assert!(is_ssl_key("listener.name.ssl.ssl.keystore.location"));
        assert!(!is_ssl_key("log.retention.ms"));
    }
}
