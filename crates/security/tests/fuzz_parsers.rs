//! Arbitrary input into every parser and server of the crate: an error or
//! an answer, never a panic.

use std::sync::Arc;

use gregor_security::scram::{decode_saslname, ClientFinal, ClientFirst};
use gregor_security::{
    Authenticator, JaasConfig, Mechanism, PlainUsers, ScramCredential, ScramMechanism,
    StaticCredentials,
};
use proptest::prelude::*;

fn authenticator() -> Authenticator {
    let mut store = StaticCredentials::with_plain(
        PlainUsers::from_jaas_text(
            "org.apache.kafka.common.security.plain.PlainLoginModule required user_u=\"p\";",
        )
        .unwrap(),
    );
    for m in ScramMechanism::ALL {
        // Few iterations: this is about parsing, not key stretching.
        store.add_scram(
            "u",
            m,
            ScramCredential::from_password(m, "p", vec![1; 8], 1),
        );
    }
    Authenticator::new(Mechanism::ALL.to_vec(), Arc::new(store)).with_oauthbearer(
        gregor_security::OAuthBearerConfig {
            validator: gregor_security::oauthbearer::Validator::Unsecured(Default::default()),
            clock: Arc::new(|| 1_700_000_000_000),
        },
    )
}

/// Bytes shaped like SCRAM messages: attribute soup with the separators
/// the parsers look for, so they get past the first check.
fn scramish() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b"n,".to_vec()),
            Just(b",".to_vec()),
            Just(b"n=".to_vec()),
            Just(b"r=".to_vec()),
            Just(b"a=".to_vec()),
            Just(b"c=biws".to_vec()),
            Just(b"p=".to_vec()),
            Just(b"=2C".to_vec()),
            Just(b"=".to_vec()),
            Just(b"\0".to_vec()),
            Just(b"\x01auth=Bearer ".to_vec()),
            Just(b"\x01".to_vec()),
            Just(b"eyJhbGciOiJub25lIn0.".to_vec()),
            prop::collection::vec(any::<u8>(), 0..6),
            "[a-zA-Z0-9+/]{0,8}".prop_map(String::into_bytes),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn jaas_never_panics(text in any::<String>()) {
        let _ = JaasConfig::parse(&text);
    }

    #[test]
    fn jaas_shaped_never_panics(parts in prop::collection::vec(
        prop_oneof![
            Just("a.B".to_string()), Just(" required ".to_string()), Just("x=".to_string()),
            Just("\"v\\\"".to_string()), Just(";".to_string()), Just("{".to_string()),
            Just("}".to_string()), Just("/*".to_string()), Just("*/".to_string()),
            Just("//".to_string()), Just("'".to_string()), Just("\\".to_string()),
            any::<String>(),
        ], 0..16)) {
        let _ = JaasConfig::parse(&parts.concat());
    }

    #[test]
    fn scram_messages_never_panic(bytes in scramish()) {
        let _ = ClientFirst::parse(&bytes);
        let _ = ClientFinal::parse(&bytes);
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let _ = decode_saslname(s);
        }
    }

    #[test]
    fn servers_never_panic(first in scramish(), second in scramish(), raw in any::<Vec<u8>>()) {
        let auth = authenticator();
        for m in Mechanism::ALL {
            let mut server = auth.start_with_nonce(m.name(), "srv".into()).unwrap();
            let _ = server.step(&first);
            let _ = server.step(&second);
            let _ = server.step(&raw);
            let mut server = auth.start_with_nonce(m.name(), "srv".into()).unwrap();
            let _ = server.step(&raw);
        }
    }

    /// A well-formed client-first with arbitrary names, then arbitrary finals.
    #[test]
    fn scram_after_a_valid_first(user in any::<String>(), fin in scramish()) {
        let auth = authenticator();
        let mut server = auth.start_with_nonce("SCRAM-SHA-256", "srv".into()).unwrap();
        let name = gregor_security::scram::encode_saslname(&user);
        if server.step(format!("n,,n={name},r=abc").as_bytes()).is_ok() {
            let mut full = b"c=biws,r=abcsrv,p=".to_vec();
            full.extend_from_slice(&fin);
            let _ = server.step(&full);
        }
    }
}
