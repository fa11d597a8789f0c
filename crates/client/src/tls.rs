//! TLS for `security.protocol` SSL and SASL_SSL: the client's `ssl.*`
//! settings, in librdkafka's names and in the Java client's, turned into
//! one rustls config shared by every connection of a client.
//!
//! | setting | librdkafka name | Java name |
//! | --- | --- | --- |
//! | CA certificates | `ssl.ca.location` (PEM file), `ssl.ca.pem` | `ssl.truststore.location` (`ssl.truststore.type=PEM`), `ssl.truststore.certificates` |
//! | client certificate (mTLS) | `ssl.certificate.location`, `ssl.certificate.pem` | `ssl.keystore.location` (key and chain in one PEM file), `ssl.keystore.certificate.chain` |
//! | client key | `ssl.key.location`, `ssl.key.pem` | in the keystore, or `ssl.keystore.key` |
//! | key password (encrypted PKCS#8) | `ssl.key.password` | `ssl.key.password` |
//! | host name check | `ssl.endpoint.identification.algorithm` (`https`, default; `none`) | same, empty means none |
//!
//! Without CA settings the system's CA bundle is used (as librdkafka and
//! the JVM's default truststore do): `SSL_CERT_FILE`, else the usual
//! distribution paths.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gregor_security::keystore::{self, KeyMaterial, StoreType};
use gregor_security::tls_verify::AnyHostName;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::ServerName;
use rustls::RootCertStore;

use crate::error::{Error, Result};

/// Where PEM text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemSource {
    File(PathBuf),
    Inline(String),
}

/// The client's `ssl.*` settings as given (files are read by [`SslSettings::rustls_config`]).
#[derive(Clone, PartialEq, Eq)]
pub struct SslSettings {
    /// `ssl.ca.location` / `ssl.ca.pem` / `ssl.truststore.location` / `ssl.truststore.certificates`.
    pub ca: Option<PemSource>,
    /// `ssl.certificate.location` / `ssl.certificate.pem` / `ssl.keystore.certificate.chain`,
    /// or `ssl.keystore.location` (key and chain in one file).
    pub certificate: Option<PemSource>,
    /// `ssl.key.location` / `ssl.key.pem` / `ssl.keystore.key`; `None` with
    /// a keystore file, which holds the key too.
    pub key: Option<PemSource>,
    /// `ssl.key.password`.
    pub key_password: Option<String>,
    /// `ssl.keystore.password` / `ssl.truststore.password` (PEM files need none).
    pub keystore_password: Option<String>,
    pub truststore_password: Option<String>,
    /// `ssl.keystore.type` (default PEM here: a client given librdkafka's
    /// PEM names never sets it; JKS is refused when named).
    pub keystore_type: String,
    /// `ssl.truststore.type`.
    pub truststore_type: String,
    /// `ssl.endpoint.identification.algorithm=https` (the default): the
    /// broker's certificate must name the host connected to.
    pub verify_hostname: bool,
}

impl Default for SslSettings {
    fn default() -> Self {
        SslSettings {
            ca: None,
            certificate: None,
            key: None,
            key_password: None,
            keystore_password: None,
            truststore_password: None,
            keystore_type: "PEM".into(),
            truststore_type: "PEM".into(),
            verify_hostname: true,
        }
    }
}

impl std::fmt::Debug for SslSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SslSettings")
            .field("ca", &self.ca)
            .field("certificate", &self.certificate)
            .field("key", &self.key.as_ref().map(|_| "[hidden]"))
            .field(
                "key_password",
                &self.key_password.as_ref().map(|_| "[hidden]"),
            )
            .field(
                "keystore_password",
                &self.keystore_password.as_ref().map(|_| "[hidden]"),
            )
            .field(
                "truststore_password",
                &self.truststore_password.as_ref().map(|_| "[hidden]"),
            )
            .field("keystore_type", &self.keystore_type)
            .field("truststore_type", &self.truststore_type)
            .field("verify_hostname", &self.verify_hostname)
            .finish()
    }
}

/// Where distributions keep the system CA bundle (what openssl-probe looks at).
const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

#[allow(deprecated)] // see the broker's transport/tls.rs: ring, not aws-lc-rs
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::config(key, format!("reading {}: {e}", path.display())))
}

impl SslSettings {
    fn text(&self, source: &PemSource, key: &str) -> Result<Vec<u8>> {
        match source {
            PemSource::File(p) => read(key, p),
            PemSource::Inline(s) => Ok(s.as_bytes().to_vec()),
        }
    }

    /// The CA certificates the broker's certificate must chain to.
    fn roots(&self) -> Result<RootCertStore> {
        const KEY: &str = "ssl.ca.location";
        StoreType::parse("ssl.truststore.type", &self.truststore_type)
            .map_err(|e| Error::config("ssl.truststore.type", e.to_string()))?;
        let (text, what) = match &self.ca {
            Some(source) => (self.text(source, KEY)?, describe(source)),
            None => {
                let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
                let path = from_env
                    .into_iter()
                    .chain(SYSTEM_CA_FILES.iter().map(PathBuf::from))
                    .find(|p| p.is_file())
                    .ok_or_else(|| {
                        Error::config(
                            KEY,
                            "not set and no system CA bundle found; set ssl.ca.location (or ssl.truststore.location) to the CA's PEM file",
                        )
                    })?;
                (read(KEY, &path)?, path.display().to_string())
            }
        };
        let certs = keystore::pem_certificates(&text)
            .map_err(|e| Error::config(KEY, format!("{what}: {e}")))?;
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(Error::config(
                KEY,
                format!("{what}: no usable CA certificate"),
            ));
        }
        Ok(roots)
    }

    /// The client certificate and key, when mTLS is configured.
    fn key_material(&self) -> Result<Option<KeyMaterial>> {
        const KEY: &str = "ssl.certificate.location";
        let Some(cert_source) = &self.certificate else {
            if self.key.is_some() {
                return Err(Error::config(
                    "ssl.key.location",
                    "a client key needs its certificate (ssl.certificate.location)",
                ));
            }
            return Ok(None);
        };
        StoreType::parse("ssl.keystore.type", &self.keystore_type)
            .map_err(|e| Error::config("ssl.keystore.type", e.to_string()))?;
        let chain_text = self.text(cert_source, KEY)?;
        let key_text = match &self.key {
            Some(source) => self.text(source, "ssl.key.location")?,
            None => chain_text.clone(),
        };
        let what = describe(cert_source);
        keystore::pem_key_material(&chain_text, &key_text, self.key_password.as_deref())
            .map(Some)
            .map_err(|e| Error::config(KEY, format!("{what}: {e}")))
    }

    /// Reads the files and builds the config every connection of a client shares.
    pub fn rustls_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        let provider = provider();
        let roots = Arc::new(self.roots()?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| Error::config("ssl.ca.location", e.to_string()))?;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config("security.protocol", e.to_string()))?;
        let builder = if self.verify_hostname {
            builder.with_webpki_verifier(webpki)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyHostName::new(webpki)))
        };
        let config = match self.key_material()? {
            None => builder.with_no_client_auth(),
            Some(m) => builder
                .with_client_auth_cert(m.chain, m.key)
                .map_err(|e| Error::config("ssl.key.location", e.to_string()))?,
        };
        Ok(Arc::new(config))
    }
}

fn describe(source: &PemSource) -> String {
    match source {
        PemSource::File(p) => p.display().to_string(),
        PemSource::Inline(_) => "inline PEM".to_string(),
    }
}

/// The name to verify the broker's certificate against: the host of `host:port`.
pub(crate) fn server_name(addr: &str) -> std::result::Result<ServerName<'static>, String> {
    let host = match addr.rsplit_once(':') {
        Some((h, _)) => h,
        None => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| format!("{host:?} is not a host name: {e}"))
}

/// Words for a failed handshake that point at the setting to check.
pub(crate) fn handshake_hint(err: &std::io::Error) -> &'static str {
    let text = err.to_string();
    if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        " (the broker's certificate is not signed by a CA in ssl.ca.location / ssl.truststore.location)"
    } else if text.contains("NotValidForName") || text.contains("not valid for name") {
        " (the broker's certificate does not name this host; fix its SANs or set ssl.endpoint.identification.algorithm=none)"
    } else if text.contains("certificate required") || text.contains("CertificateRequired") {
        " (the broker requires a client certificate: set ssl.certificate.location and ssl.key.location)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        assert!(matches!(
            server_name("127.0.0.1:9093"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("[::1]:9093"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("broker-1.example:9093"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(server_name("bad host:1").is_err());
    }

    #[test]
    fn missing_and_wrong_files_name_the_setting() {
        let s = SslSettings {
            ca: Some(PemSource::File("/nonexistent/ca.pem".into())),
            ..Default::default()
        };
        let err = s.rustls_config().unwrap_err().to_string();
        assert!(
            err.contains("ssl.ca.location") && err.contains("/nonexistent/ca.pem"),
            "{err}"
        );
        let s = SslSettings {
            ca: Some(PemSource::Inline("not pem".into())),
            ..Default::default()
        };
        assert!(s
            .rustls_config()
            .unwrap_err()
            .to_string()
            .contains("no CERTIFICATE"));
        let s = SslSettings {
            truststore_type: "JKS".into(),
            ..Default::default()
        };
        let err = s.rustls_config().unwrap_err().to_string();
        assert!(
            err.contains("ssl.truststore.type=JKS is not supported"),
            "{err}"
        );
    }
}
