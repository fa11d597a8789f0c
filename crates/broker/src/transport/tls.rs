//! TLS for SSL listeners: Kafka's `ssl.*` settings of one listener, read
//! with Kafka's precedence (`listener.name.<listener lower case>.ssl.X`
//! over `ssl.X` over Kafka's default), turned into a rustls server config,
//! and the principal of a client that presented a certificate.
//!
//! | Kafka config | here |
//! | --- | --- |
//! | `ssl.keystore.type` | `PEM` only (JKS / PKCS12 are refused at start) |
//! | `ssl.keystore.location` | a PEM file with the private key and the certificate chain |
//! | `ssl.keystore.certificate.chain`, `ssl.keystore.key` | the same, inline |
//! | `ssl.key.password` | the password of an encrypted PKCS#8 key (`ENCRYPTED PRIVATE KEY`, PBES2) |
//! | `ssl.truststore.type` | `PEM` only |
//! | `ssl.truststore.location`, `ssl.truststore.certificates` | CA certificates for client certificates |
//! | `ssl.client.auth` | `none`, `requested`, `required` |
//! | `ssl.enabled.protocols` | `TLSv1.2`, `TLSv1.3` (older ones are refused) |
//! | `ssl.cipher.suites` | IANA / JSSE names of the suites rustls implements |
//! | `ssl.principal.mapping.rules` | see `principal.rs` |
//! | `ssl.endpoint.identification.algorithm` | outgoing connections (`client.rs`): `https` checks the peer's host name, empty does not |
//!
//! Files are read when the listener is bound, so a missing or unreadable
//! file stops the start with its path named; `tls_reload.rs` reads them
//! again when they or the dynamic `ssl.*` configs change.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use gregor_security::keystore;
use gregor_security::tls_verify::AnyHostName;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{
    ClientConfig, RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::principal::{MappingError, PrincipalMapper};

/// A listener's `ssl.*` settings are invalid (found at start, before any file is read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsConfigError {
    #[error("listener {listener}: {key}={value} is not supported: {reason}")]
    Unsupported {
        listener: String,
        key: String,
        value: String,
        reason: String,
    },
    #[error("listener {listener}: {reason}")]
    Missing { listener: String, reason: String },
    #[error("listener {listener}: {source}")]
    Mapping {
        listener: String,
        source: MappingError,
    },
}

/// A listener's key, certificates or CAs cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("listener {listener}: reading {what} {path}: {source}")]
    Read {
        listener: String,
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("listener {listener}: {what}: {reason}")]
    Pem {
        listener: String,
        what: String,
        reason: String,
    },
    #[error("listener {listener}: {source}")]
    Rustls {
        listener: String,
        source: rustls::Error,
    },
    #[error("listener {listener}: client certificate verifier: {reason}")]
    Verifier { listener: String, reason: String },
}

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// Where PEM text comes from: a file, or the config value itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemSource {
    File(PathBuf),
    Inline(String),
}

/// One listener's TLS settings, validated (files are read by [`TlsSettings::server_config`]).
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub listener: String,
    /// The key and certificate chain: one file holding both
    /// (`ssl.keystore.location`), or the two inline values. Always set on a
    /// listener this node serves; optional for one it only connects to (a
    /// broker-only node's view of the controller listener).
    pub keystore: Option<Keystore>,
    /// `ssl.key.password`, for an encrypted PKCS#8 key.
    pub key_password: Option<Password>,
    pub truststore: Option<PemSource>,
    pub client_auth: ClientAuth,
    pub tls12: bool,
    pub tls13: bool,
    /// Empty: rustls's default suites.
    pub cipher_suites: Vec<SupportedCipherSuite>,
    pub principal_mapper: PrincipalMapper,
    /// `ssl.endpoint.identification.algorithm` is `https` (Kafka's
    /// default): an outgoing connection checks that the peer's certificate
    /// names the host it dialled.
    pub verify_hostname: bool,
    /// `ssl.allow.dn.changes` (default false): a reloaded keystore may
    /// carry a certificate with another subject DN.
    pub allow_dn_changes: bool,
    /// `ssl.allow.san.changes` (default false): a reloaded keystore may
    /// drop subject alternative names.
    pub allow_san_changes: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keystore {
    File(PathBuf),
    Inline { chain: String, key: String },
}

/// The value of `key` for `listener`: its `listener.name.<listener>.` override,
/// else the plain key, else Kafka's default.
fn lookup<'a>(props: &'a BTreeMap<String, String>, listener: &str, key: &str) -> Option<&'a str> {
    let prefixed = format!(
        "{}{}.{key}",
        gregor_metadata::config_defs::LISTENER_PREFIX,
        listener.to_ascii_lowercase()
    );
    props
        .get(&prefixed)
        .or_else(|| props.get(key))
        .map(|v| v.trim())
        .or_else(|| gregor_metadata::config_defs::broker_config(key).and_then(|d| d.default))
        .filter(|v| !v.is_empty())
}

/// rustls with *ring*: builds with a C compiler only (aws-lc-rs wants
/// cmake and takes minutes). rustls 0.23.48 deprecates it for lacking the
/// post-quantum key exchange (X25519MLKEM768), which no Kafka client
/// offers yet; moving to aws-lc-rs changes this function only.
#[allow(deprecated)]
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The IANA (JSSE) name of a suite: rustls spells TLS 1.3 suites `TLS13_*`
/// where IANA and Java say `TLS_*`.
fn iana_name(suite: &SupportedCipherSuite) -> String {
    let name = suite
        .suite()
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:?}", suite.suite()));
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

impl TlsSettings {
    /// Reads and validates the `ssl.*` settings of `listener`.
    pub fn from_props(
        props: &BTreeMap<String, String>,
        listener: &str,
    ) -> Result<Self, TlsConfigError> {
        Self::parse(props, listener, true)
    }

    /// The settings of a listener this node only connects to: the keystore
    /// (a client certificate) may be absent.
    pub fn client_from_props(
        props: &BTreeMap<String, String>,
        listener: &str,
    ) -> Result<Self, TlsConfigError> {
        Self::parse(props, listener, false)
    }

    fn parse(
        props: &BTreeMap<String, String>,
        listener: &str,
        need_keystore: bool,
    ) -> Result<Self, TlsConfigError> {
        let get = |key: &str| lookup(props, listener, key);
        let unsupported = |key: &str, value: &str, reason: String| TlsConfigError::Unsupported {
            listener: listener.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            reason,
        };
        let missing = |reason: &str| TlsConfigError::Missing {
            listener: listener.to_string(),
            reason: reason.to_string(),
        };

        let chain = get("ssl.keystore.certificate.chain");
        let key = get("ssl.keystore.key");
        let location = get("ssl.keystore.location");
        let keystore = match (location, chain, key) {
            (Some(path), None, None) => Some(Keystore::File(PathBuf::from(path))),
            (None, Some(chain), Some(key)) => Some(Keystore::Inline {
                chain: chain.to_string(),
                key: key.to_string(),
            }),
            (None, None, None) if !need_keystore => None,
            (None, None, None) => {
                return Err(missing(
                    "an SSL listener needs ssl.keystore.location (a PEM file with key and certificate chain) \
                     or ssl.keystore.certificate.chain with ssl.keystore.key",
                ))
            }
            (Some(_), _, _) => {
                return Err(missing(
                    "give either ssl.keystore.location or ssl.keystore.certificate.chain with ssl.keystore.key, not both",
                ))
            }
            _ => {
                return Err(missing(
                    "ssl.keystore.certificate.chain and ssl.keystore.key go together",
                ))
            }
        };

        // Kafka's default keystore type is JKS; inline PEM values say PEM by themselves.
        let keystore_type = match (props_has(props, listener, "ssl.keystore.type"), chain, key) {
            (false, Some(_), Some(_)) => "PEM",
            _ => get("ssl.keystore.type").unwrap_or("JKS"),
        };
        if keystore.is_some() && !keystore_type.eq_ignore_ascii_case("PEM") {
            return Err(unsupported(
                "ssl.keystore.type",
                keystore_type,
                "Gregor reads PEM keystores only; set ssl.keystore.type=PEM (convert with `openssl pkcs12 -nodes`)".into(),
            ));
        }
        let trust_location = get("ssl.truststore.location");
        let trust_inline = get("ssl.truststore.certificates");
        let truststore =
            match (trust_location, trust_inline) {
                (None, None) => None,
                (Some(_), Some(_)) => return Err(missing(
                    "give either ssl.truststore.location or ssl.truststore.certificates, not both",
                )),
                (location, inline) => {
                    let trust_type = match props_has(props, listener, "ssl.truststore.type") {
                        false if inline.is_some() => "PEM",
                        _ => get("ssl.truststore.type").unwrap_or("JKS"),
                    };
                    if !trust_type.eq_ignore_ascii_case("PEM") {
                        return Err(unsupported(
                            "ssl.truststore.type",
                            trust_type,
                            "Gregor reads PEM truststores only; set ssl.truststore.type=PEM".into(),
                        ));
                    }
                    Some(match (location, inline) {
                        (Some(path), _) => PemSource::File(PathBuf::from(path)),
                        (_, Some(text)) => PemSource::Inline(text.to_string()),
                        _ => unreachable!("matched above"),
                    })
                }
            };

        let auth_text = get("ssl.client.auth").unwrap_or("none");
        let client_auth = match auth_text.to_ascii_lowercase().as_str() {
            "none" => ClientAuth::None,
            "requested" => ClientAuth::Requested,
            "required" => ClientAuth::Required,
            _ => {
                return Err(unsupported(
                    "ssl.client.auth",
                    auth_text,
                    "expected none, requested or required".into(),
                ))
            }
        };
        if client_auth != ClientAuth::None && truststore.is_none() {
            return Err(missing(&format!(
                "ssl.client.auth={auth_text} needs a truststore (ssl.truststore.location or ssl.truststore.certificates) \
                 to verify client certificates"
            )));
        }

        let protocols_text = get("ssl.enabled.protocols").unwrap_or("TLSv1.2,TLSv1.3");
        let (mut tls12, mut tls13) = (false, false);
        for p in protocols_text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match p {
                "TLSv1.2" => tls12 = true,
                "TLSv1.3" => tls13 = true,
                other => {
                    return Err(unsupported(
                        "ssl.enabled.protocols",
                        protocols_text,
                        format!("'{other}' is not offered (TLSv1.2 and TLSv1.3 are)"),
                    ))
                }
            }
        }
        if !(tls12 || tls13) {
            return Err(unsupported(
                "ssl.enabled.protocols",
                protocols_text,
                "no protocol left".into(),
            ));
        }

        let all = provider().cipher_suites;
        let mut cipher_suites = Vec::new();
        if let Some(text) = get("ssl.cipher.suites") {
            for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let found = all.iter().find(|s| {
                    let iana = iana_name(s);
                    iana == name || format!("{:?}", s.suite()) == name
                });
                match found {
                    Some(s) => cipher_suites.push(*s),
                    None => {
                        let known: Vec<String> = all.iter().map(iana_name).collect();
                        return Err(unsupported(
                            "ssl.cipher.suites",
                            text,
                            format!("unknown cipher suite '{name}'; known: {}", known.join(",")),
                        ));
                    }
                }
            }
            let usable = cipher_suites.iter().any(|s| match s {
                SupportedCipherSuite::Tls12(_) => tls12,
                SupportedCipherSuite::Tls13(_) => tls13,
            });
            if !usable {
                return Err(unsupported(
                    "ssl.cipher.suites",
                    text,
                    format!("no suite for the enabled protocols ({protocols_text})"),
                ));
            }
        }

        let flag = |key: &str| match get(key) {
            None => Ok(false),
            Some(v) if v.trim().eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.trim().eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(unsupported(key, v, "expected true or false".into())),
        };
        let rules = get("ssl.principal.mapping.rules").unwrap_or("DEFAULT");
        let principal_mapper =
            PrincipalMapper::parse(rules).map_err(|source| TlsConfigError::Mapping {
                listener: listener.to_string(),
                source,
            })?;

        Ok(Self {
            listener: listener.to_string(),
            keystore,
            key_password: get("ssl.key.password").map(|p| Password(p.to_string())),
            truststore,
            client_auth,
            tls12,
            tls13,
            cipher_suites,
            principal_mapper,
            allow_dn_changes: flag("ssl.allow.dn.changes")?,
            allow_san_changes: flag("ssl.allow.san.changes")?,
            verify_hostname: match get("ssl.endpoint.identification.algorithm") {
                None => false,
                Some(a) if a.eq_ignore_ascii_case("https") => true,
                Some(other) => {
                    return Err(unsupported(
                        "ssl.endpoint.identification.algorithm",
                        other,
                        "expected https or an empty value".into(),
                    ))
                }
            },
        })
    }

    /// Reads the key and its certificate chain (`None`: no keystore).
    #[allow(clippy::type_complexity)]
    fn identity(
        &self,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, TlsError> {
        let listener = self.listener.clone();
        let pem_err = |what: &str, reason: String| TlsError::Pem {
            listener: listener.clone(),
            what: what.to_string(),
            reason,
        };
        let (chain_text, key_text, what) = match &self.keystore {
            None => return Ok(None),
            Some(Keystore::File(path)) => {
                let text = self.read(path, "ssl.keystore.location")?;
                (
                    text.clone(),
                    text,
                    format!("ssl.keystore.location {}", path.display()),
                )
            }
            Some(Keystore::Inline { chain, key }) => (
                chain.clone(),
                key.clone(),
                "ssl.keystore.certificate.chain / ssl.keystore.key".to_string(),
            ),
        };
        if self.key_password.is_some() && !keystore::has_encrypted_key(key_text.as_bytes()) {
            tracing::info!(listener = %self.listener, "ssl.key.password is set but the key is not encrypted; it is not used");
        }
        let material = keystore::pem_key_material(
            chain_text.as_bytes(),
            key_text.as_bytes(),
            self.key_password.as_ref().map(|p| p.0.as_str()),
        )
        .map_err(|e| pem_err(&what, e.to_string()))?;
        Ok(Some((material.chain, material.key)))
    }

    /// Who the keystore's certificate says this node is (`None`: no
    /// keystore): what a reload may not change unless allowed.
    pub fn keystore_identity(&self) -> Result<Option<CertIdentity>, TlsError> {
        let Some((chain, _)) = self.identity()? else {
            return Ok(None);
        };
        let Some(leaf) = chain.first() else {
            return Ok(None);
        };
        CertIdentity::of(leaf.as_ref())
            .map(Some)
            .map_err(|reason| TlsError::Pem {
                listener: self.listener.clone(),
                what: "ssl.keystore certificate".into(),
                reason,
            })
    }

    /// Kafka's check of a reloaded keystore (`SslFactory`'s
    /// `CertificateEntries.ensureCompatible`): the subject DN must stay
    /// the same unless `ssl.allow.dn.changes`, and every subject
    /// alternative name must stay unless `ssl.allow.san.changes` (new ones
    /// may be added). The error is Kafka's message.
    pub fn ensure_compatible(&self, old: &CertIdentity, new: &CertIdentity) -> Result<(), String> {
        // A PEM keystore has one entry; Kafka names it "kafka".
        const ALIAS: &str = "kafka";
        if !self.allow_dn_changes && !old.dn.eq_ignore_ascii_case(&new.dn) {
            return Err(format!(
                "Keystore DistinguishedName does not match:  existing={{alias={ALIAS}, DN={}}}, \
                 new={{alias={ALIAS}, DN={}}}",
                old.dn, new.dn
            ));
        }
        if !self.allow_san_changes && !old.sans.is_subset(&new.sans) {
            return Err(format!(
                "Keystore SubjectAltNames do not match:  existing={{alias={ALIAS}, SAN={}}}, \
                 new={{alias={ALIAS}, SAN={}}}",
                old.java_sans(),
                new.java_sans()
            ));
        }
        Ok(())
    }

    /// The CA certificates of the truststore (`None`: no truststore).
    fn roots(&self) -> Result<Option<RootCertStore>, TlsError> {
        let Some(source) = &self.truststore else {
            return Ok(None);
        };
        let (text, what) = match source {
            PemSource::File(path) => (
                self.read(path, "ssl.truststore.location")?,
                format!("ssl.truststore.location {}", path.display()),
            ),
            PemSource::Inline(text) => (text.clone(), "ssl.truststore.certificates".into()),
        };
        let pem_err = |reason: String| TlsError::Pem {
            listener: self.listener.clone(),
            what: what.clone(),
            reason,
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(text.as_bytes()) {
            let cert = cert.map_err(|e| pem_err(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| pem_err(format!("CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(pem_err("no CERTIFICATE in it".into()));
        }
        Ok(Some(roots))
    }

    /// The provider restricted to the configured suites, and the enabled
    /// protocol versions.
    fn provider_and_versions(
        &self,
    ) -> (Arc<CryptoProvider>, Vec<&'static SupportedProtocolVersion>) {
        let mut provider = provider();
        if !self.cipher_suites.is_empty() {
            provider.cipher_suites = self.cipher_suites.clone();
        }
        let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
        if self.tls13 {
            versions.push(&rustls::version::TLS13);
        }
        if self.tls12 {
            versions.push(&rustls::version::TLS12);
        }
        (Arc::new(provider), versions)
    }

    /// The rustls config of this node's outgoing connections to the
    /// listener: the peer verified against the truststore (and its host
    /// name unless `ssl.endpoint.identification.algorithm` is empty), the
    /// keystore presented as client certificate when there is one.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let listener = self.listener.clone();
        let Some(roots) = self.roots()? else {
            return Err(TlsError::Pem {
                listener,
                what: "ssl.truststore.location".into(),
                reason: "connecting to an SSL listener needs a truststore \
                         (ssl.truststore.location or ssl.truststore.certificates) \
                         to verify the peer's certificate"
                    .into(),
            });
        };
        let (provider, versions) = self.provider_and_versions();
        let rustls_err = |source| TlsError::Rustls {
            listener: listener.clone(),
            source,
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(rustls_err)?;
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TlsError::Verifier {
                listener: listener.clone(),
                reason: e.to_string(),
            })?;
        let builder = if self.verify_hostname {
            builder.with_webpki_verifier(verifier)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyHostName::new(verifier)))
        };
        let config = match self.identity()? {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(rustls_err)?,
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }

    /// Reads the key, certificates and CAs and builds the rustls config.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let listener = self.listener.clone();
        let Some((chain, key)) = self.identity()? else {
            return Err(TlsError::Pem {
                listener,
                what: "ssl.keystore.location".into(),
                reason: "an SSL listener needs a keystore".into(),
            });
        };
        let pem_err = |what: &str, reason: String| TlsError::Pem {
            listener: listener.clone(),
            what: what.to_string(),
            reason,
        };
        let (provider, versions) = self.provider_and_versions();
        let rustls_err = |source| TlsError::Rustls {
            listener: listener.clone(),
            source,
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(rustls_err)?;
        let builder = match (self.client_auth, &self.truststore) {
            (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
            (auth, Some(_)) => {
                let roots = self
                    .roots()?
                    .ok_or_else(|| pem_err("ssl.truststore.location", "no truststore".into()))?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = match auth {
                    ClientAuth::Requested => verifier.allow_unauthenticated(),
                    _ => verifier,
                };
                let verifier = verifier.build().map_err(|e| TlsError::Verifier {
                    listener: listener.clone(),
                    reason: e.to_string(),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(chain, key).map_err(rustls_err)?;
        Ok(Arc::new(config))
    }

    fn read(&self, path: &std::path::Path, what: &'static str) -> Result<String, TlsError> {
        std::fs::read_to_string(path).map_err(|source| TlsError::Read {
            listener: self.listener.clone(),
            what,
            path: path.to_path_buf(),
            source,
        })
    }
}

/// A secret config value: never printed (Kafka's `Password` prints `[hidden]`).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[hidden]")
    }
}

/// Whether `key` is given for `listener` (prefixed or plain), as opposed to defaulted.
fn props_has(props: &BTreeMap<String, String>, listener: &str, key: &str) -> bool {
    let prefixed = format!(
        "{}{}.{key}",
        gregor_metadata::config_defs::LISTENER_PREFIX,
        listener.to_ascii_lowercase()
    );
    props.contains_key(&prefixed) || props.contains_key(key)
}

/// A certificate's identity as Kafka compares keystores on reload: its
/// subject DN (RFC 2253) and its subject alternative names, each as Java's
/// `getSubjectAlternativeNames` lists it (`(type, value)`: 1 email, 2 DNS,
/// 6 URI, 7 IP address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    pub dn: String,
    pub sans: std::collections::BTreeSet<(u8, String)>,
}

impl CertIdentity {
    /// Reads one DER certificate.
    pub fn of(der: &[u8]) -> Result<Self, String> {
        use x509_parser::extensions::GeneralName;
        use x509_parser::prelude::FromDer;
        let dn = subject_dn(der)?;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
            .map_err(|e| format!("unreadable certificate: {e}"))?;
        let mut sans = std::collections::BTreeSet::new();
        let ext = cert
            .subject_alternative_name()
            .map_err(|e| format!("unreadable subjectAltName: {e}"))?;
        for name in ext.iter().flat_map(|e| e.value.general_names.iter()) {
            let entry = match name {
                GeneralName::RFC822Name(v) => (1, v.to_string()),
                GeneralName::DNSName(v) => (2, v.to_string()),
                GeneralName::URI(v) => (6, v.to_string()),
                GeneralName::IPAddress(b) => (7, ip_text(b)),
                other => (0, format!("{other:?}")),
            };
            sans.insert(entry);
        }
        Ok(Self { dn, sans })
    }

    /// The SAN set as Java prints it: `[[2, localhost], [7, 127.0.0.1]]`.
    fn java_sans(&self) -> String {
        let items: Vec<String> = self
            .sans
            .iter()
            .map(|(kind, value)| format!("[{kind}, {value}]"))
            .collect();
        format!("[{}]", items.join(", "))
    }
}

/// An iPAddress SAN's octets as text (4 or 16 bytes; anything else in hex).
fn ip_text(b: &[u8]) -> String {
    match b.len() {
        4 => std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string(),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

/// The subject DN of a DER certificate in RFC 2253 form, as Java's
/// `X500Principal.getName()` prints it (and Kafka maps it): RDNs from the
/// last to the first, `CN=alice,OU=eng,O=acme`; the attribute types Java
/// names by keyword (CN, C, L, ST, O, OU, STREET, DC, UID), others as the
/// dotted OID with the value's DER in hex (`1.2.840.113549.1.9.1=#16...`).
pub fn subject_dn(der: &[u8]) -> Result<String, String> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| format!("unreadable certificate: {e}"))?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter() {
        let mut parts = Vec::new();
        for atv in rdn.iter() {
            let oid = atv.attr_type().to_id_string();
            let keyword = match oid.as_str() {
                "2.5.4.3" => Some("CN"),
                "2.5.4.6" => Some("C"),
                "2.5.4.7" => Some("L"),
                "2.5.4.8" => Some("ST"),
                "2.5.4.10" => Some("O"),
                "2.5.4.11" => Some("OU"),
                "2.5.4.9" => Some("STREET"),
                "0.9.2342.19200300.100.1.25" => Some("DC"),
                "0.9.2342.19200300.100.1.1" => Some("UID"),
                _ => None,
            };
            let value = atv.attr_value();
            let text = match (keyword, atv.as_str()) {
                (Some(k), Ok(s)) => format!("{k}={}", escape_rfc2253(s)),
                (k, _) => {
                    let mut encoded = Vec::with_capacity(value.data.len() + 4);
                    let h = &value.header;
                    let class = h.class() as u8;
                    let tag = h.tag().0;
                    if tag >= 31 {
                        return Err(format!("attribute {oid} has a high tag number"));
                    }
                    encoded.push((class << 6) | (u8::from(h.is_constructed()) << 5) | tag as u8);
                    let len = value.data.len();
                    if len < 128 {
                        encoded.push(len as u8);
                    } else {
                        let bytes = (len as u64).to_be_bytes();
                        let skip = bytes.iter().take_while(|b| **b == 0).count();
                        encoded.push(0x80 | (8 - skip) as u8);
                        encoded.extend_from_slice(&bytes[skip..]);
                    }
                    encoded.extend_from_slice(value.data);
                    let hex: String = encoded.iter().map(|b| format!("{b:02x}")).collect();
                    format!("{}=#{hex}", k.map(str::to_string).unwrap_or(oid))
                }
            };
            parts.push(text);
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// RFC 2253 section 2.4 escaping, as Java prints it.
fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn listener_prefix_takes_precedence() {
        let p = props(&[
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", "/plain.pem"),
            ("listener.name.ssl.ssl.keystore.location", "/ssl.pem"),
            ("listener.name.ssl.ssl.client.auth", "requested"),
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", "/ca.pem"),
        ]);
        let s = TlsSettings::from_props(&p, "SSL").unwrap();
        assert_eq!(s.keystore, Some(Keystore::File("/ssl.pem".into())));
        assert_eq!(s.client_auth, ClientAuth::Requested);
        let other = TlsSettings::from_props(&p, "EXTERNAL").unwrap();
        assert_eq!(other.keystore, Some(Keystore::File("/plain.pem".into())));
        assert_eq!(other.client_auth, ClientAuth::None);
        assert!(other.tls12 && other.tls13);
        assert!(other.cipher_suites.is_empty());
    }

    #[test]
    fn kafka_names_are_checked() {
        let base = [
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", "/k.pem"),
        ];
        let with = |extra: &[(&str, &str)]| {
            let mut p = props(&base);
            p.extend(props(extra));
            TlsSettings::from_props(&p, "SSL")
        };
        let s = with(&[
            (
                "ssl.cipher.suites",
                "TLS_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            ),
            ("ssl.enabled.protocols", "TLSv1.3"),
        ])
        .unwrap();
        assert_eq!(s.cipher_suites.len(), 2);
        assert!(s.tls13 && !s.tls12);
        let err = with(&[("ssl.cipher.suites", "TLS_RSA_WITH_RC4_128_MD5")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown cipher suite 'TLS_RSA_WITH_RC4_128_MD5'"),
            "{err}"
        );
        assert!(with(&[("ssl.enabled.protocols", "TLSv1.1")]).is_err());
        assert!(
            with(&[("ssl.client.auth", "required")]).is_err(),
            "no truststore"
        );
        assert!(with(&[("ssl.principal.mapping.rules", "RULE:x")]).is_err());
        // Kafka's default keystore type is JKS.
        let mut jks = props(&base);
        jks.remove("ssl.keystore.type");
        let err = TlsSettings::from_props(&jks, "SSL")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ssl.keystore.type=JKS"), "{err}");
        // Inline PEM needs no type.
        let inline = props(&[
            (
                "ssl.keystore.certificate.chain",
                "-----BEGIN CERTIFICATE-----",
            ),
            ("ssl.keystore.key", "-----BEGIN PRIVATE KEY-----"),
        ]);
        assert!(TlsSettings::from_props(&inline, "SSL").is_ok());
        assert!(TlsSettings::from_props(&props(&[]), "SSL").is_err());
    }

    /// `openssl req -x509 -subj "/DC=org/DC=example/O=acme, inc/OU=eng+UID=a1/CN=alice #1/emailAddress=a@example.org"`.
    const DN_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIICgDCCAiWgAwIBAgIUG4YP4H+MtqLNiQIKbwJSi2iFHOAwCgYIKoZIzj0EAwIw\ngZMxEzARBgoJkiaJk/IsZAEZFgNvcmcxFzAVBgoJkiaJk/IsZAEZFgdleGFtcGxl\nMRIwEAYDVQQKDAlhY21lLCBpbmMxHjAKBgNVBAsMA2VuZzAQBgoJkiaJk/IsZAEB\nDAJhMTERMA8GA1UEAwwIYWxpY2UgIzExHDAaBgkqhkiG9w0BCQEWDWFAZXhhbXBs\nZS5vcmcwIBcNMjYxMjA1MDA0NTA0WhgPMjEyNjExMTEwMDQ1MDRaMIGTMRMwEQYK\nCZImiZPyLGQBGRYDb3JnMRcwFQYKCZImiZPyLGQBGRYHZXhhbXBsZTESMBAGA1UE\nCgwJYWNtZSwgaW5jMR4wCgYDVQQLDANlbmcwEAYKCZImiZPyLGQBAQwCYTExETAP\nBgNVBAMMCGFsaWNlICMxMRwwGgYJKoZIhvcNAQkBFg1hQGV4YW1wbGUub3JnMFkw\nEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEE4fDMFQU8eacg+K2KxKjh1BkCw26BAPV\nLzIYvpLBb+h8LNbhN9UjjYlNEdNU4AUHjrKZ2z62mAQFI8uyj7q/9qNTMFEwHQYD\nVR0OBBYEFDz67PfcAuHgOui/B6wGQ++rkvAjMB8GA1UdIwQYMBaAFDz67PfcAuHg\nOui/B6wGQ++rkvAjMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIh\nALouR/aKwDQxSjTAsIx+02YPGKpp41SUOusPezBHs8OpAiEA1QnrZzm6yLjsv8aE\nqcZooheqZ0tU9lxsw3SOEheh35o=\n-----END CERTIFICATE-----";

    #[test]
    fn subject_dn_is_rfc2253_as_java_prints_it() {
        let der = CertificateDer::from_pem_slice(DN_CERT.as_bytes()).unwrap();
        // Last RDN first; emailAddress has no RFC 2253 keyword (Java prints
        // its OID and DER); a multi-valued RDN in DER order (Java does not
        // sort it, openssl does); the comma in a value is escaped.
        assert_eq!(
            subject_dn(der.as_ref()).unwrap(),
            "1.2.840.113549.1.9.1=#160d61406578616d706c652e6f7267,CN=alice #1,OU=eng+UID=a1,O=acme\\, inc,DC=example,DC=org"
        );
        assert!(subject_dn(b"not a certificate").is_err());
    }

    #[test]
    fn rfc2253_escaping() {
        assert_eq!(escape_rfc2253("a,b"), "a\\,b");
        assert_eq!(escape_rfc2253(" #x "), "\\ #x\\ ");
        assert_eq!(escape_rfc2253("#x"), "\\#x");
    }
}
