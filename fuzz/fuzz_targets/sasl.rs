//! SASL exchanges (PLAIN, SCRAM-SHA-256/512) and the JAAS parser fed
//! arbitrary bytes, as an unauthenticated client can: an error or an
//! answer, never a panic. The split of the input into client messages is
//! taken from its first byte.

#![no_main]

use std::sync::Arc;

use gregor_security::scram::{ClientFinal, ClientFirst};
use gregor_security::{
    Authenticator, JaasConfig, Mechanism, PlainUsers, ScramCredential, ScramMechanism,
    StaticCredentials,
};
use libfuzzer_sys::fuzz_target;

fn authenticator() -> Authenticator {
    let mut store = StaticCredentials::with_plain(
        PlainUsers::from_jaas_text(
            "org.apache.kafka.common.security.plain.PlainLoginModule required user_u=\"p\";",
        )
        .expect("valid JAAS"),
    );
    for m in ScramMechanism::ALL {
        store.add_scram("u", m, ScramCredential::from_password(m, "p", vec![1; 8], 1));
    }
    Authenticator::new(Mechanism::ALL.to_vec(), Arc::new(store))
}

fuzz_target!(|data: &[u8]| {
    let _ = ClientFirst::parse(data);
    let _ = ClientFinal::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = JaasConfig::parse(text);
    }
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(split).min(rest.len());
    let (first, second) = rest.split_at(cut);
    let auth = authenticator();
    for m in Mechanism::ALL {
        let Ok(mut server) = auth.start_with_nonce(m.name(), "srv".into()) else {
            continue;
        };
        let _ = server.step(first);
        let _ = server.step(second);
    }
});
