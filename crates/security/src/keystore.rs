//! Keystores and truststores as Kafka names them (`ssl.keystore.*`,
//! `ssl.truststore.*`), read into the DER certificates and private key that
//! rustls takes. Shared by the broker's SSL listeners and the client.
//!
//! | type | keystore | truststore |
//! | --- | --- | --- |
//! | `PEM` | a private key (PKCS#8, PKCS#1 or SEC1; or `ENCRYPTED PRIVATE KEY` with `ssl.key.password`) and the certificate chain | `CERTIFICATE` blocks |
//!
//! Kafka's default type is `JKS`, which is refused with a message naming
//! the supported types (no maintained pure-Rust JKS reader exists).

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A keystore or truststore cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeystoreError {
    #[error("{kind}={name} is not supported (supported types: {supported})")]
    UnsupportedType {
        kind: &'static str,
        name: String,
        supported: &'static str,
    },
    #[error("no CERTIFICATE in it")]
    NoCertificate,
    #[error("certificate chain: {0}")]
    Certificates(String),
    #[error("private key: {0}")]
    Key(String),
    #[error("the private key is encrypted: set ssl.key.password")]
    KeyPasswordMissing,
    #[error("cannot decrypt the private key with ssl.key.password (wrong password?)")]
    KeyPasswordWrong,
}

/// `ssl.keystore.type` / `ssl.truststore.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreType {
    Pem,
}

/// What the error for an unsupported type lists.
pub const SUPPORTED_TYPES: &str = "PEM";

impl StoreType {
    /// Parses a type name (case-insensitive, as Java's `KeyStore.getInstance`).
    /// `kind` names the setting for the error ("ssl.keystore.type").
    pub fn parse(kind: &'static str, name: &str) -> Result<StoreType, KeystoreError> {
        match name.trim().to_ascii_uppercase().as_str() {
            "PEM" => Ok(StoreType::Pem),
            _ => Err(KeystoreError::UnsupportedType {
                kind,
                name: name.trim().to_string(),
                supported: SUPPORTED_TYPES,
            }),
        }
    }
}

/// A certificate chain (leaf first) and its private key.
#[derive(Debug)]
pub struct KeyMaterial {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for KeyMaterial {
    fn clone(&self) -> Self {
        KeyMaterial {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// The `CERTIFICATE` blocks of PEM text (at least one).
pub fn pem_certificates(text: &[u8]) -> Result<Vec<CertificateDer<'static>>, KeystoreError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(text)
        .collect::<Result<_, _>>()
        .map_err(|e| KeystoreError::Certificates(e.to_string()))?;
    if certs.is_empty() {
        return Err(KeystoreError::NoCertificate);
    }
    Ok(certs)
}

/// A PEM keystore: the chain from `chain_text`, the key from `key_text`
/// (the same text when one file holds both), decrypted with `password`
/// when it is an `ENCRYPTED PRIVATE KEY`.
pub fn pem_key_material(
    chain_text: &[u8],
    key_text: &[u8],
    password: Option<&str>,
) -> Result<KeyMaterial, KeystoreError> {
    let chain = pem_certificates(chain_text)?;
    let key = match (encrypted_key_block(key_text), password) {
        (None, _) => PrivateKeyDer::from_pem_slice(key_text)
            .map_err(|e| KeystoreError::Key(e.to_string()))?,
        (Some(_), None) => return Err(KeystoreError::KeyPasswordMissing),
        (Some(block), Some(password)) => decrypt_pkcs8_pem(block, password)?,
    };
    Ok(KeyMaterial { chain, key })
}

/// Whether PEM text holds an `ENCRYPTED PRIVATE KEY` block.
pub fn has_encrypted_key(text: &[u8]) -> bool {
    encrypted_key_block(text).is_some()
}

/// The `ENCRYPTED PRIVATE KEY` PEM block in `text`, if any.
fn encrypted_key_block(text: &[u8]) -> Option<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &[u8] = b"-----END ENCRYPTED PRIVATE KEY-----";
    let start = find(text, BEGIN)?;
    let end = find(&text[start..], END)? + start + END.len();
    Some(&text[start..end])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decrypts a PKCS#8 `EncryptedPrivateKeyInfo` in PEM (PBES2: PBKDF2 or
/// scrypt with AES-CBC, what `openssl pkcs8 -topk8 -v2 aes256` writes), as
/// Java's `EncryptedPrivateKeyInfo` does for Kafka's PEM keystores.
fn decrypt_pkcs8_pem(
    pem_block: &[u8],
    password: &str,
) -> Result<PrivateKeyDer<'static>, KeystoreError> {
    let (_, der) =
        pkcs8::der::pem::decode_vec(pem_block).map_err(|e| KeystoreError::Key(e.to_string()))?;
    decrypt_pkcs8_der(&der, password)
}

/// [`decrypt_pkcs8_pem`] for DER.
pub fn decrypt_pkcs8_der(
    der: &[u8],
    password: &str,
) -> Result<PrivateKeyDer<'static>, KeystoreError> {
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der)
        .map_err(|e| KeystoreError::Key(e.to_string()))?;
    let plain = info.decrypt(password.as_bytes()).map_err(|e| match e {
        // A wrong password shows as bad padding, which pkcs5 0.7 reports as
        // EncryptFailed from its decrypt path.
        pkcs8::Error::EncryptedPrivateKey(
            pkcs8::pkcs5::Error::DecryptFailed | pkcs8::pkcs5::Error::EncryptFailed,
        ) => KeystoreError::KeyPasswordWrong,
        other => KeystoreError::Key(format!("{other} (PBES2 with AES-CBC is supported)")),
    })?;
    Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        assert_eq!(
            StoreType::parse("ssl.keystore.type", "pem"),
            Ok(StoreType::Pem)
        );
        let err = StoreType::parse("ssl.keystore.type", "JKS")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "ssl.keystore.type=JKS is not supported (supported types: PEM)"
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(
            pem_certificates(b"nothing"),
            Err(KeystoreError::NoCertificate)
        );
        assert!(pem_key_material(b"x", b"y", None).is_err());
        let enc =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(has_encrypted_key(enc));
        assert!(decrypt_pkcs8_pem(enc, "pw").is_err());
        assert!(decrypt_pkcs8_der(&[0x30, 0x80, 0xff], "pw").is_err());
    }
}
