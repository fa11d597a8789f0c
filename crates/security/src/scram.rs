//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka uses them:
//! the credentials a server stores, their derivation from a password, the
//! messages of the exchange, and the server side of it.
//!
//! ```text
//! client-first   n,,n=alice,r=<cnonce>
//! server-first   r=<cnonce><snonce>,s=<base64 salt>,i=4096
//! client-final   c=biws,r=<cnonce><snonce>,p=<base64 ClientProof>
//! server-final   v=<base64 ServerSignature>        (or e=<error>)
//! ```
//!
//! The server keeps `StoredKey = H(HMAC(SaltedPassword, "Client Key"))` and
//! `ServerKey = HMAC(SaltedPassword, "Server Key")`, never the password or
//! the salted password. Like Kafka, no SASLprep is applied: the password's
//! UTF-8 bytes are used as they are.

use std::fmt;
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::{AuthError, CredentialStore, Step};

/// A SCRAM mechanism. The numbers are Kafka's `ScramMechanism` type ids, as
/// used in the Describe/AlterUserScramCredentials APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name: `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub fn mechanism_name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_mechanism_name(name: &str) -> Option<Self> {
        ScramMechanism::ALL
            .into_iter()
            .find(|m| m.mechanism_name() == name)
    }

    /// Kafka's type id: 1 for SHA-256, 2 for SHA-512 (0 is UNKNOWN).
    pub fn type_id(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_type_id(id: i8) -> Option<Self> {
        ScramMechanism::ALL.into_iter().find(|m| m.type_id() == id)
    }

    /// Kafka's bounds on the iteration count (`ScramMechanism.minIterations`,
    /// and the 16384 maximum AlterUserScramCredentials enforces).
    pub fn min_iterations(self) -> i32 {
        4096
    }

    pub fn max_iterations(self) -> i32 {
        16384
    }

    /// The hash's output length in bytes (the length of every key).
    pub fn key_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length, so new_from_slice cannot fail.
        match self {
            ScramMechanism::Sha256 => match Hmac::<Sha256>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
            ScramMechanism::Sha512 => match Hmac::<Sha512>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
        }
    }

    /// `Hi(password, salt, i)`: PBKDF2-HMAC with the mechanism's hash.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.key_len()];
        match self {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out)
            }
        }
        out
    }
}

impl fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mechanism_name())
    }
}

/// What a server stores for one user and mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl fmt::Debug for ScramCredential {
    // The keys are password equivalents for an offline attack: keep them
    // out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("salt", &B64.encode(&self.salt))
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// The credential for a salted password (what AlterUserScramCredentials
    /// carries: the client computed `Hi(password, salt, i)`).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: Vec<u8>,
        iterations: i32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// The credential for a password with the given salt.
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        salt: Vec<u8>,
        iterations: i32,
    ) -> ScramCredential {
        let salted = mechanism.salted_password(
            password.as_bytes(),
            &salt,
            u32::try_from(iterations).unwrap_or(0),
        );
        Self::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// Whether `password` is the one this credential was made from: the
    /// stored key derived again with the stored salt and iterations,
    /// compared in constant time (what the HTTP listener's basic
    /// authentication checks; no SCRAM exchange is needed for that).
    pub fn matches_password(&self, mechanism: ScramMechanism, password: &str) -> bool {
        let Ok(iterations) = u32::try_from(self.iterations) else {
            return false;
        };
        if iterations == 0 || self.stored_key.is_empty() {
            return false;
        }
        let salted = mechanism.salted_password(password.as_bytes(), &self.salt, iterations);
        let stored_key = mechanism.hash(&mechanism.hmac(&salted, b"Client Key"));
        bool::from(stored_key.ct_eq(&self.stored_key))
    }

    /// The credential for a password with a fresh random salt (as Kafka's
    /// `ScramFormatter.generateCredential`).
    pub fn generate(
        mechanism: ScramMechanism,
        password: &str,
        iterations: i32,
        rng: &mut impl Rng,
    ) -> ScramCredential {
        Self::from_password(mechanism, password, random_salt(rng), iterations)
    }
}

/// A fresh 32-byte salt.
pub fn random_salt(rng: &mut impl Rng) -> Vec<u8> {
    let mut salt = vec![0u8; 32];
    rng.fill(&mut salt[..]);
    salt
}

/// A fresh nonce: 32 printable characters without `,` (RFC 5802 `printable`).
pub fn random_nonce(rng: &mut impl Rng) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..32)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// Decodes a `saslname` (`=2C` is `,`, `=3D` is `=`, any other `=` is an error).
pub fn decode_saslname(name: &str) -> Result<String, AuthError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find([',', '=']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("=2C") {
            out.push(',');
        } else if tail.starts_with("=3D") {
            out.push('=');
        } else {
            return Err(malformed(format!("invalid username encoding {name:?}")));
        }
        rest = &tail[3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Encodes a user name as a `saslname`.
pub fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn malformed(reason: String) -> AuthError {
    AuthError::Malformed {
        mechanism: "SCRAM",
        reason,
    }
}

fn printable(s: &str) -> bool {
    // RFC 5802: %x21-2B / %x2D-7E, printable ASCII except ','.
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// The client's first message (RFC 5802 `client-first-message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The GS2 header as sent (`n,,` or `n,a=alice,`): the client-final's
    /// `c=` must be its base64.
    pub gs2_header: String,
    /// The authorization id (`a=`), if given.
    pub authzid: Option<String>,
    /// The user name, decoded.
    pub username: String,
    pub nonce: String,
    /// Extensions after the nonce (`name=value`), e.g. Kafka's `tokenauth=true`.
    pub extensions: Vec<(String, String)>,
    /// `client-first-message-bare`: part of the AuthMessage.
    pub bare: String,
}

impl ClientFirst {
    pub fn parse(bytes: &[u8]) -> Result<ClientFirst, AuthError> {
        let msg = std::str::from_utf8(bytes)
            .map_err(|_| malformed("client-first message is not UTF-8".into()))?;
        let (cbind, rest) = msg
            .split_once(',')
            .ok_or_else(|| malformed("client-first message has no GS2 header".into()))?;
        match cbind {
            // "y": the client could bind but thinks we cannot; we cannot, so
            // that is fine (RFC 5802 section 6).
            "n" | "y" => {}
            _ if cbind.starts_with("p=") => return Err(AuthError::ChannelBindingNotSupported),
            _ => return Err(malformed(format!("invalid GS2 flag {cbind:?}"))),
        }
        let (authz, bare) = rest
            .split_once(',')
            .ok_or_else(|| malformed("client-first message has no GS2 header".into()))?;
        let authzid = match authz {
            "" => None,
            _ => match authz.strip_prefix("a=") {
                Some(a) => Some(decode_saslname(a)?),
                None => return Err(malformed(format!("invalid authzid {authz:?}"))),
            },
        };
        let gs2_header = msg[..msg.len() - bare.len()].to_string();
        let mut attrs = bare.split(',');
        let username = match attrs.next().and_then(|a| a.strip_prefix("n=")) {
            Some(n) => decode_saslname(n)?,
            None => return Err(malformed("client-first message has no user name".into())),
        };
        let nonce = match attrs.next().and_then(|a| a.strip_prefix("r=")) {
            Some(r) if printable(r) => r.to_string(),
            _ => return Err(malformed("client-first message has no valid nonce".into())),
        };
        let mut extensions = Vec::new();
        for ext in attrs {
            // `m=` is reserved for mandatory extensions: we know none.
            match ext.split_once('=') {
                Some((k, v))
                    if !k.is_empty()
                        && k != "m"
                        && k.bytes().all(|b| b.is_ascii_alphanumeric()) =>
                {
                    extensions.push((k.to_string(), v.to_string()));
                }
                _ => return Err(malformed(format!("invalid extension {ext:?}"))),
            }
        }
        Ok(ClientFirst {
            gs2_header,
            authzid,
            username,
            nonce,
            extensions,
            bare: bare.to_string(),
        })
    }
}

/// The client's final message (RFC 5802 `client-final-message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFinal {
    /// The `c=` value, decoded.
    pub channel_binding: Vec<u8>,
    pub nonce: String,
    pub proof: Vec<u8>,
    /// `client-final-message-without-proof`: part of the AuthMessage.
    pub without_proof: String,
}

impl ClientFinal {
    pub fn parse(bytes: &[u8]) -> Result<ClientFinal, AuthError> {
        let msg = std::str::from_utf8(bytes)
            .map_err(|_| malformed("client-final message is not UTF-8".into()))?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or_else(|| malformed("client-final message has no proof".into()))?;
        let proof = B64
            .decode(proof)
            .map_err(|_| malformed("client-final proof is not base64".into()))?;
        let mut attrs = without_proof.split(',');
        let channel_binding = match attrs.next().and_then(|a| a.strip_prefix("c=")) {
            Some(c) => B64
                .decode(c)
                .map_err(|_| malformed("client-final channel binding is not base64".into()))?,
            None => {
                return Err(malformed(
                    "client-final message has no channel binding".into(),
                ))
            }
        };
        let nonce = match attrs.next().and_then(|a| a.strip_prefix("r=")) {
            Some(r) if printable(r) => r.to_string(),
            _ => return Err(malformed("client-final message has no valid nonce".into())),
        };
        for ext in attrs {
            if !ext.contains('=') {
                return Err(malformed(format!("invalid extension {ext:?}")));
            }
        }
        Ok(ClientFinal {
            channel_binding,
            nonce,
            proof,
            without_proof: without_proof.to_string(),
        })
    }
}

/// The `e=` values of RFC 5802's server-error.
fn server_error(e: &str) -> Vec<u8> {
    format!("e={e}").into_bytes()
}

enum State {
    ReceiveClientFirst,
    ReceiveClientFinal {
        username: String,
        credential: ScramCredential,
        /// Whether the user is unknown and the credential a decoy (so
        /// that user names cannot be probed: the exchange fails at the
        /// proof, as for a wrong password).
        decoy: bool,
        gs2_header: String,
        auth_prefix: String,
        nonce: String,
    },
    Done,
}

/// The server side of one SCRAM exchange. Feed it each message the client
/// sends; it answers with the next server message.
pub struct ScramServer {
    mechanism: ScramMechanism,
    store: Arc<dyn CredentialStore>,
    server_nonce: String,
    state: State,
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramServer")
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

impl ScramServer {
    /// A server for one exchange; `server_nonce` is this server's part of
    /// the nonce (see [`random_nonce`]; it must be printable, without `,`).
    pub fn new(
        mechanism: ScramMechanism,
        store: Arc<dyn CredentialStore>,
        server_nonce: String,
    ) -> ScramServer {
        ScramServer {
            mechanism,
            store,
            server_nonce,
            state: State::ReceiveClientFirst,
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// One step of the exchange. Any error ends it: a later step answers
    /// [`AuthError::IllegalState`].
    pub fn step(&mut self, input: &[u8]) -> Result<Step, AuthError> {
        let state = std::mem::replace(&mut self.state, State::Done);
        match state {
            State::ReceiveClientFirst => {
                let (out, next) = self.client_first(input)?;
                self.state = next;
                Ok(Step::Continue(out))
            }
            State::ReceiveClientFinal {
                username,
                credential,
                decoy,
                gs2_header,
                auth_prefix,
                nonce,
            } => {
                let fin = ClientFinal::parse(input)?;
                // Kafka's ScramSaslServer checks only that the nonce ends
                // with the server-first one, and librdkafka before 2.x
                // sends the client nonce twice (`r=<cnonce><cnonce><snonce>`):
                // be as lenient, or those clients cannot authenticate. The
                // proof still covers the message as the client sent it.
                if !fin.nonce.ends_with(&nonce) {
                    return Err(malformed("client-final nonce does not match".into()));
                }
                if fin.channel_binding != gs2_header.as_bytes() {
                    return Err(malformed(
                        "client-final channel binding does not match the GS2 header".into(),
                    ));
                }
                let auth_message = format!("{auth_prefix},{}", fin.without_proof);
                let m = self.mechanism;
                let signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
                if fin.proof.len() != signature.len() {
                    return Err(AuthError::InvalidCredentials {
                        mechanism: m.mechanism_name(),
                        server_final: Some(server_error("invalid-proof")),
                    });
                }
                let client_key: Vec<u8> = fin
                    .proof
                    .iter()
                    .zip(&signature)
                    .map(|(p, s)| p ^ s)
                    .collect();
                let computed = m.hash(&client_key);
                let matches: bool = computed.ct_eq(&credential.stored_key).into();
                if !matches || decoy {
                    return Err(AuthError::InvalidCredentials {
                        mechanism: m.mechanism_name(),
                        server_final: Some(server_error("invalid-proof")),
                    });
                }
                let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
                Ok(Step::Done {
                    principal: username,
                    response: format!("v={}", B64.encode(server_signature)).into_bytes(),
                })
            }
            State::Done => Err(AuthError::IllegalState),
        }
    }

    fn client_first(&self, input: &[u8]) -> Result<(Vec<u8>, State), AuthError> {
        let first = ClientFirst::parse(input)?;
        if let Some(authzid) = &first.authzid {
            if *authzid != first.username {
                return Err(AuthError::AuthorizationIdMismatch);
            }
        }
        for (k, v) in &first.extensions {
            // Kafka's delegation tokens (KIP-48) are not served.
            if k == "tokenauth" && v.eq_ignore_ascii_case("true") {
                return Err(AuthError::TokenAuthNotSupported);
            }
        }
        let (credential, decoy) = match self.store.scram_credential(&first.username, self.mechanism)
        {
            Some(c) => (c, false),
            None => (decoy_credential(self.mechanism, &first.username), true),
        };
        let nonce = format!("{}{}", first.nonce, self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let auth_prefix = format!("{},{server_first}", first.bare);
        Ok((
            server_first.into_bytes(),
            State::ReceiveClientFinal {
                username: first.username,
                credential,
                decoy,
                gs2_header: first.gs2_header,
                auth_prefix,
                nonce,
            },
        ))
    }
}

/// What a verified password is remembered by: HMAC-SHA-256 under a key
/// drawn at random for the process, so a cache of checked logins holds no
/// password (and nothing that outlives the process).
pub fn password_memo(password: &str) -> Vec<u8> {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(|| rand::thread_rng().gen());
    ScramMechanism::Sha256.hmac(key, password.as_bytes())
}

/// A stand-in credential for an unknown user: its salt is stable per user
/// name for the life of the process (an HMAC under a random process key),
/// so repeated probes see what a real user would show.
fn decoy_credential(mechanism: ScramMechanism, username: &str) -> ScramCredential {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(|| rand::thread_rng().gen());
    let salt = ScramMechanism::Sha256.hmac(key, username.as_bytes());
    ScramCredential {
        salt,
        stored_key: vec![0; mechanism.key_len()],
        server_key: vec![0; mechanism.key_len()],
        iterations: mechanism.min_iterations(),
    }
}

/// The client side of an exchange, for tests and tools (Gregor's own client
/// does not authenticate yet).
#[derive(Debug)]
pub struct ScramClient {
    mechanism: ScramMechanism,
    username: String,
    password: String,
    nonce: String,
    client_first_bare: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, username: &str, password: &str, nonce: &str) -> Self {
        ScramClient {
            mechanism,
            username: username.into(),
            password: password.into(),
            nonce: nonce.into(),
            client_first_bare: format!("n={},r={nonce}", encode_saslname(username)),
            server_signature: None,
        }
    }

    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// The client-final message for the server-first message.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, AuthError> {
        let sf = std::str::from_utf8(server_first)
            .map_err(|_| malformed("server-first message is not UTF-8".into()))?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in sf.split(',') {
            if let Some(r) = attr.strip_prefix("r=") {
                nonce = Some(r);
            } else if let Some(s) = attr.strip_prefix("s=") {
                salt = B64.decode(s).ok();
            } else if let Some(i) = attr.strip_prefix("i=") {
                iterations = i.parse::<u32>().ok();
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(malformed("invalid server-first message".into()));
        };
        if !nonce.starts_with(&self.nonce) {
            return Err(malformed(
                "server nonce does not extend the client's".into(),
            ));
        }
        let m = self.mechanism;
        let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{sf},{without_proof}", self.client_first_bare);
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.server_signature = Some(m.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Whether the server-final message proves the server knew the credential.
    pub fn verify_server_final(&self, server_final: &[u8]) -> bool {
        let Some(expected) = &self.server_signature else {
            return false;
        };
        std::str::from_utf8(server_final)
            .ok()
            .and_then(|s| s.strip_prefix("v="))
            .and_then(|v| B64.decode(v).ok())
            .is_some_and(|v| bool::from(v.ct_eq(expected)))
    }

    pub fn username(&self) -> &str {
        &self.username
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StaticCredentials;

    #[test]
    fn saslnames() {
        assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
        assert_eq!(encode_saslname("a,b=c"), "a=2Cb=3Dc");
        assert!(decode_saslname("a=2").is_err());
        assert!(decode_saslname("a=41").is_err());
        assert!(decode_saslname("a,b").is_err());
        assert_eq!(decode_saslname("").unwrap(), "");
    }

    #[test]
    fn client_first_parsing() {
        let f = ClientFirst::parse(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(f.gs2_header, "n,,");
        assert_eq!(f.username, "user");
        assert_eq!(f.nonce, "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(f.bare, "n=user,r=rOprNGfwEbeRWgbNEkqO");
        let f = ClientFirst::parse(b"n,a=us=3Der,n=us=3Der,r=x,tokenauth=true").unwrap();
        assert_eq!(f.authzid.as_deref(), Some("us=er"));
        assert_eq!(f.gs2_header, "n,a=us=3Der,");
        assert_eq!(f.extensions, vec![("tokenauth".into(), "true".into())]);
        assert_eq!(
            ClientFirst::parse(b"p=tls-unique,,n=user,r=x").unwrap_err(),
            AuthError::ChannelBindingNotSupported
        );
        for bad in [
            &b""[..],
            b"n",
            b"n,",
            b"x,,n=u,r=x",
            b"n,,r=x",
            b"n,,n=u",
            b"n,,n=u,r=",
            b"n,,n=u,r=a b",
            b"n,,m=ext,n=u,r=x",
            b"n,,n=u,r=x,m=mandatory",
            b"n,,n=u,r=x,noequals",
            b"n,b=x,n=u,r=x",
            b"n,,n=u=,r=x",
            b"\xff,,n=u,r=x",
        ] {
            assert!(ClientFirst::parse(bad).is_err(), "{:?}", bad);
        }
    }

    #[test]
    fn client_final_parsing() {
        let f = ClientFinal::parse(b"c=biws,r=abc,p=AAEC").unwrap();
        assert_eq!(f.channel_binding, b"n,,");
        assert_eq!(f.nonce, "abc");
        assert_eq!(f.proof, vec![0, 1, 2]);
        assert_eq!(f.without_proof, "c=biws,r=abc");
        for bad in [
            &b""[..],
            b"c=biws,r=abc",
            b"c=biws,r=abc,p=!!",
            b"r=abc,p=AAEC",
            b"c=biws,p=AAEC",
            b"c=%%,r=abc,p=AAEC",
            b"c=biws,r=abc,x,p=AAEC",
        ] {
            assert!(ClientFinal::parse(bad).is_err(), "{:?}", bad);
        }
    }

    fn store_with(
        user: &str,
        credential: ScramCredential,
        m: ScramMechanism,
    ) -> Arc<StaticCredentials> {
        let mut store = StaticCredentials::default();
        store.add_scram(user, m, credential);
        Arc::new(store)
    }

    /// RFC 7677 section 3: the SCRAM-SHA-256 example exchange, byte for byte.
    #[test]
    fn rfc7677_example() {
        let m = ScramMechanism::Sha256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let credential = ScramCredential::from_password(m, "pencil", salt, 4096);
        let store = store_with("user", credential, m);
        let mut server = ScramServer::new(m, store, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into());
        let server_first = server.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(
            server_first,
            Step::Continue(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".to_vec()
            )
        );
        let done = server
            .step(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(
            done,
            Step::Done {
                principal: "user".into(),
                response: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
            }
        );
        assert!(server.is_complete());
        assert_eq!(server.step(b"more").unwrap_err(), AuthError::IllegalState);

        // The test client computes the same client-final message.
        let mut client = ScramClient::new(m, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(client.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let fin = client
            .client_final(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        assert_eq!(fin, b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=".to_vec());
        assert!(client.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="));
        assert!(!client.verify_server_final(b"v=AAAA"));
    }

    fn exchange(
        m: ScramMechanism,
        store: Arc<StaticCredentials>,
        user: &str,
        password: &str,
    ) -> Result<String, AuthError> {
        let mut rng = rand::thread_rng();
        let mut client = ScramClient::new(m, user, password, &random_nonce(&mut rng));
        let mut server = ScramServer::new(m, store, random_nonce(&mut rng));
        let Step::Continue(server_first) = server.step(&client.client_first())? else {
            panic!("SCRAM finished after one message");
        };
        let fin = client.client_final(&server_first)?;
        match server.step(&fin)? {
            Step::Done {
                principal,
                response,
            } => {
                assert!(client.verify_server_final(&response));
                Ok(principal)
            }
            Step::Continue(_) => panic!("SCRAM went on after the final message"),
        }
    }

    #[test]
    fn round_trips_and_failures() {
        let mut rng = rand::thread_rng();
        for m in ScramMechanism::ALL {
            for user in ["alice", "we,ird=name"] {
                let credential = ScramCredential::generate(m, "alice-secret", 4096, &mut rng);
                let store = store_with(user, credential, m);
                assert_eq!(
                    exchange(m, store.clone(), user, "alice-secret").unwrap(),
                    user
                );
                let wrong = exchange(m, store.clone(), user, "nope").unwrap_err();
                assert!(matches!(
                    wrong,
                    AuthError::InvalidCredentials { server_final: Some(ref e), .. } if e == b"e=invalid-proof"
                ));
                // An unknown user fails the same way, at the proof.
                let unknown = exchange(m, store.clone(), "mallory", "alice-secret").unwrap_err();
                assert_eq!(unknown, wrong);
                // The other mechanism's credential does not exist.
                let other = if m == ScramMechanism::Sha256 {
                    ScramMechanism::Sha512
                } else {
                    ScramMechanism::Sha256
                };
                assert!(exchange(other, store, user, "alice-secret").is_err());
            }
        }
    }

    #[test]
    fn decoy_salt_is_stable_per_user() {
        let store: Arc<dyn CredentialStore> = Arc::new(StaticCredentials::default());
        let first = |user: &str| {
            let mut s = ScramServer::new(ScramMechanism::Sha512, store.clone(), "srv".into());
            s.step(format!("n,,n={user},r=abc").as_bytes()).unwrap()
        };
        assert_eq!(first("ghost"), first("ghost"));
        assert_ne!(first("ghost"), first("spook"));
    }

    #[test]
    fn exchange_errors() {
        let m = ScramMechanism::Sha256;
        let credential = ScramCredential::generate(m, "pw", 4096, &mut rand::thread_rng());
        let store = store_with("u", credential, m);
        let new = || ScramServer::new(m, store.clone(), "SRV".into());
        assert_eq!(
            new().step(b"n,a=admin,n=u,r=abc").unwrap_err(),
            AuthError::AuthorizationIdMismatch
        );
        assert!(new().step(b"n,a=u,n=u,r=abc").is_ok());
        assert_eq!(
            new().step(b"n,,n=u,r=abc,tokenauth=true").unwrap_err(),
            AuthError::TokenAuthNotSupported
        );
        // A wrong nonce, a wrong channel binding, a short proof.
        for fin in [
            &b"c=biws,r=abcXXX,p=AAAA"[..],
            b"c=eSws,r=abcSRV,p=AAAA",
            b"c=biws,r=abcSRV,p=AAAA",
        ] {
            let mut s = new();
            s.step(b"n,,n=u,r=abc").unwrap();
            assert!(s.step(fin).is_err());
            assert_eq!(s.step(fin).unwrap_err(), AuthError::IllegalState);
        }
    }

    #[test]
    fn password_memo_tells_passwords_apart() {
        let memo = password_memo("alice-secret");
        assert_eq!(memo, password_memo("alice-secret"));
        assert_ne!(memo, password_memo("alice-secreT"));
        assert_eq!(memo.len(), 32);
    }

    #[test]
    fn password_check_against_a_stored_credential() {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let c = ScramCredential::from_password(m, "s3cret", b"salty".to_vec(), 4096);
            assert!(c.matches_password(m, "s3cret"));
            assert!(!c.matches_password(m, "s3cret "));
            assert!(!c.matches_password(m, ""));
            // A credential with nonsense iterations never matches.
            let bad = ScramCredential {
                iterations: -1,
                ..c.clone()
            };
            assert!(!bad.matches_password(m, "s3cret"));
        }
    }

    #[test]
    fn credential_debug_hides_keys() {
        let c = ScramCredential::from_password(ScramMechanism::Sha256, "pw", vec![1, 2], 4096);
        let text = format!("{c:?}");
        assert!(text.contains("iterations: 4096"));
        assert!(!text.contains("stored_key"));
    }
}
