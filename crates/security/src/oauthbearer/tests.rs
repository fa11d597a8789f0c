//! Tests of the initial response, both validators and the exchange.

use std::sync::Arc;

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::json;

use super::*;

/// A 2048-bit RSA test key (PKCS#8 DER, base64), made for these tests only.
const RSA_PKCS8: &str = concat!(
    "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQC51sJROGmTRTHArKJkSh28ycaA",
    "eOStCnWVbPzhg6B+EZtIOiM8uemsVyFhi/uU7wgwM5Iy6dSGhjkMUr/mLp9CYSlBtJM/XAh+e8MO",
    "oXIAz2esmf9lWWSBUzz8wzZcOHPbhyFZLjpBwRbbclpZxDySKFW/fIp/b3i7hhjx8q+CfjIZRcO4",
    "pKXIzn/pFSdUNZWIDpB15HD72z8d6q4UoD/RU2/HwVcsJq1QwATvYQGW+/sBVBvUGUUrtqZ/1MRJ",
    "lQYQUA6zcwMokYAhmGqCnHm6V8Tj3qc5nFVRlyemQ7+UPDH9EfWE4AQnkdr7PYtudJHakrsefBle",
    "VFUP1ktLu5+7AgMBAAECggEAAVbBmKSKPNmN8GBDXUCcHTzrlV0JnLuLZFO1hgm/kW5JYEhW8lGO",
    "lENzxfL5vDV1VCToTpNDs40VAniNfGLlRSz+XJmonpdoUkJMV0x6I0pbP1xEAZ7BbB3Fkzae1iRB",
    "UBlq9+xZgW7FiOLhMW4KAlg7DJb2R9EYSBWWaWvWWt97Eqb+8VpZxyqL7BHXSKpduyvE3CHlubTn",
    "8wG1v+M7oergkK+BatpZypCmcm8Mx8lh2jQ3bFJNOvxfmlIAovkIJZmQi5mbjt99lII7br3RyY/K",
    "1jPPJLryMm641ER7YtTHtoCL8SkwWDzxGTQFUrR8Z3HPrwH3TUVyRa5qX7z2GQKBgQDbanmx32SJ",
    "OIB+JN2VXXkekSBPSx5MaLLcNdz6TpS08CPnNPcAEIH1/rFaqEWdFqCURKRyFv+hoCkOyKPTEtIK",
    "A4QoSSfvuGBFVWUAoEjTsvpc12cYymzE9Jo9MJIXFCwgx0tbLeOB099nMEDFKDG66N8ja03QOHD/",
    "VUZlzA1Z4wKBgQDY0xYGopoiERPa7/25/cso3s20+e21diuODqSPk0Uu/RpOtOjTy8wgdYL0318M",
    "k20JhoVk847P8ECOCDCxysa3B/ufqV/dOwg642+Jho+5hXgeZ77YsRpHDch0FtMCbEX9idqaf5Q5",
    "/EAkA32HQkxb6Bi68xO7VEpqiJRieodqSQKBgBwCVZKdP8o8ijqQHjEpA4MhZ4x3vGBopRxzS8gw",
    "K8+FMDAdlMJPWSe74Yv/GxPYhZsnwA5IXU2WkmcuuasCJgndNQunew+g67kuE3ym+WT83fToEmMZ",
    "xBTIXMAe6SdFDfUJO9dh3j7+evBDOqFwZhjEDWgKFJ7V9abCjgAEsledAoGAImNICQFc5K5EseKC",
    "IS9pOzAq+9rvomn9emhEHSlEPbGSrIzwqDaYR0Wb4W5TytDO6EXXfi1Kpxv5gQ03e9snLPwtIiNg",
    "utuT8JMFq5AV11ydsmTN1dwwyLgc5JyCFs5JQ27Lptk5DwE8wvlyvTL8nU7wLSZEKN+zdbX3oq7A",
    "L1ECgYAi3MUVn+wqF7K8CalhPvVZbkdJb+Xy1WgBLu5LKzTnrAzgaUUjupCbksiReoBzPn9kYO1G",
    "V+zInoXB4Y8+9Wx9EGeIjW/1/YLOCWGOhftmIvuYgK7UpnBQ/zM4HDG2LThW+rD6SeiRQItiyAB9",
    "XT+HjV3RFxiEwrKvBYgH9RzAuQ==",
);
/// Its modulus, base64url.
const RSA_N: &str = "udbCUThpk0UxwKyiZEodvMnGgHjkrQp1lWz84YOgfhGbSDojPLnprFchYYv7lO8IMDOSMunUhoY5DFK_5i6fQmEpQbSTP1wIfnvDDqFyAM9nrJn_ZVlkgVM8_MM2XDhz24chWS46QcEW23JaWcQ8kihVv3yKf294u4YY8fKvgn4yGUXDuKSlyM5_6RUnVDWViA6QdeRw-9s_HequFKA_0VNvx8FXLCatUMAE72EBlvv7AVQb1BlFK7amf9TESZUGEFAOs3MDKJGAIZhqgpx5ulfE496nOZxVUZcnpkO_lDwx_RH1hOAEJ5Ha-z2LbnSR2pK7HnwZXlRVD9ZLS7ufuw";

const NOW_MS: i64 = 1_700_000_000_000;
const NOW: i64 = NOW_MS / 1000;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_key() -> RsaKeyPair {
    let der = base64::engine::general_purpose::STANDARD
        .decode(RSA_PKCS8)
        .unwrap();
    RsaKeyPair::from_pkcs8(&der).unwrap()
}

fn ec_key(alg: &'static sig::EcdsaSigningAlgorithm) -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap()
}

fn signing_input(header: &serde_json::Value, claims: &serde_json::Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn sign_rsa(alg: &str, kid: Option<&str>, claims: &serde_json::Value) -> String {
    let mut header = json!({"alg": alg, "typ": "JWT"});
    if let Some(k) = kid {
        header["kid"] = json!(k);
    }
    let input = signing_input(&header, claims);
    let key = rsa_key();
    let padding: &dyn sig::RsaEncoding = match alg {
        "RS256" => &sig::RSA_PKCS1_SHA256,
        "RS384" => &sig::RSA_PKCS1_SHA384,
        "RS512" => &sig::RSA_PKCS1_SHA512,
        "PS256" => &sig::RSA_PSS_SHA256,
        _ => panic!("{alg}"),
    };
    let mut out = vec![0; key.public().modulus_len()];
    key.sign(padding, &SystemRandom::new(), input.as_bytes(), &mut out)
        .unwrap();
    format!("{input}.{}", b64(&out))
}

fn sign_ec(key: &EcdsaKeyPair, alg: &str, kid: &str, claims: &serde_json::Value) -> String {
    let input = signing_input(&json!({"alg": alg, "kid": kid}), claims);
    let s = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", b64(s.as_ref()))
}

fn rsa_jwk(kid: &str, alg: Option<&str>) -> serde_json::Value {
    let mut k = json!({"kty": "RSA", "kid": kid, "use": "sig", "n": RSA_N, "e": "AQAB"});
    if let Some(a) = alg {
        k["alg"] = json!(a);
    }
    k
}

fn ec_jwk(key: &EcdsaKeyPair, crv: &str, kid: &str) -> serde_json::Value {
    let point = key.public_key().as_ref();
    let len = (point.len() - 1) / 2;
    json!({"kty": "EC", "crv": crv, "kid": kid,
           "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..])})
}

fn claims() -> serde_json::Value {
    json!({"sub": "alice", "iat": NOW - 10, "exp": NOW + 3600, "aud": ["kafka"], "iss": "https://issuer", "scope": "a b"})
}

fn validator(keys: serde_json::Value) -> JwtValidator {
    let set = JwkSet::parse(json!({ "keys": keys }).to_string().as_bytes()).unwrap();
    let mut v = JwtValidator::new(Arc::new(set));
    v.expected_audience = vec!["kafka".into()];
    v.expected_issuer = Some("https://issuer".into());
    v
}

fn unsecured(claims: &serde_json::Value) -> String {
    format!("{}.", signing_input(&json!({"alg": "none"}), claims))
}

#[test]
fn initial_response() {
    let r = ClientInitialResponse::parse(b"n,,\x01auth=Bearer abc.def.\x01\x01").unwrap();
    assert_eq!(r.token, "abc.def.");
    assert_eq!(r.authzid, "");
    assert!(r.extensions.is_empty());
    let r = ClientInitialResponse::parse(
        b"n,a=al=2Cice=3D,\x01auth=bearer   t\x01traceId=123 x\x01logicalCluster=lc\x01\x01",
    )
    .unwrap();
    assert_eq!(r.authzid, "al,ice=");
    assert_eq!(r.token, "t");
    assert_eq!(
        r.extensions,
        vec![
            ("traceId".into(), "123 x".into()),
            ("logicalCluster".into(), "lc".into())
        ]
    );
    for bad in [
        &b""[..],
        b"n,,",
        b"y,,\x01auth=Bearer t\x01\x01",
        b"n,,\x01auth=Bearer t\x01",
        b"n,,\x01\x01",
        b"n,,\x01auth=Bearer t\x01\x01\x01",
        b"n,,\x01auth=Bearert\x01\x01",
        b"n,,\x01auth=Bearer t t\x01\x01",
        b"n,,\x01auth=Bearer t\x01k1=v\x01\x01",
        b"n,,\x01auth=Bearer t\x01k=\x01\x01",
        b"n,,\x01auth=Bearer t\x01auth=Bearer u\x01\x01",
        b"n,a=x=2,\x01auth=Bearer t\x01\x01",
        b"n,b=x,\x01auth=Bearer t\x01\x01",
        b"n,,\x01auth=Bearer \xff\x01\x01",
    ] {
        assert!(ClientInitialResponse::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        ClientInitialResponse::parse(b"n,,\x01auth=Basic t\x01\x01"),
        Err(OAuthBearerError::Scheme("Basic".into()))
    );
}

#[test]
fn unsecured_validator() {
    let v = UnsecuredValidator::default();
    let ok = v.validate(&unsecured(&claims()), NOW_MS).unwrap();
    assert_eq!(ok.principal, "alice");
    assert_eq!(ok.expires_at_ms, (NOW + 3600) * 1000);
    assert_eq!(ok.scope, ["a", "b"].map(String::from).into());
    // exp required and checked; iat optional, but not in the future.
    let expired = json!({"sub": "alice", "exp": NOW - 1});
    assert!(v.validate(&unsecured(&expired), NOW_MS).is_err());
    let no_exp = json!({"sub": "alice"});
    assert!(v.validate(&unsecured(&no_exp), NOW_MS).is_err());
    let no_iat = json!({"sub": "alice", "exp": NOW + 1});
    assert!(v.validate(&unsecured(&no_iat), NOW_MS).is_ok());
    let future_iat = json!({"sub": "alice", "exp": NOW + 100, "iat": NOW + 10});
    assert!(v.validate(&unsecured(&future_iat), NOW_MS).is_err());
    // Clock skew and the principal claim from the JAAS options.
    let jaas = JaasConfig::parse(&format!(
        "{OAUTHBEARER_LOGIN_MODULE} required unsecuredLoginStringClaim_sub=\"x\" \
         unsecuredValidatorPrincipalClaimName=\"user\" unsecuredValidatorRequiredScope=\"a c\" \
         unsecuredValidatorAllowableClockSkewMs=\"5000\";"
    ))
    .unwrap();
    let v2 = UnsecuredValidator::from_jaas(Some(&jaas)).unwrap();
    let t = json!({"user": "bob", "exp": NOW - 2, "scope": ["a", "c"]});
    assert_eq!(
        v2.validate(&unsecured(&t), NOW_MS).unwrap().principal,
        "bob"
    );
    let rejected = v2
        .validate(
            &unsecured(&json!({"user": "bob", "exp": NOW + 5, "scope": "a"})),
            NOW_MS,
        )
        .unwrap_err();
    assert_eq!(
        rejected.json(),
        r#"{"status":"insufficient_scope", "scope":"a c"}"#
    );
    assert!(
        v2.validate(&unsecured(&claims()), NOW_MS).is_err(),
        "no user claim"
    );
    let bad_skew = JaasConfig::parse(&format!(
        "{OAUTHBEARER_LOGIN_MODULE} required unsecuredValidatorAllowableClockSkewMs=\"-1\";"
    ))
    .unwrap();
    assert!(UnsecuredValidator::from_jaas(Some(&bad_skew)).is_err());
    // Signed tokens and malformed ones are refused.
    assert!(v
        .validate(&sign_rsa("RS256", Some("k"), &claims()), NOW_MS)
        .is_err());
    for bad in [
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "!!.!!.",
        "e30.e30.",
        "bnVsbA.e30.",
    ] {
        let r = v.validate(bad, NOW_MS).unwrap_err();
        assert_eq!(r.json(), r#"{"status":"invalid_token"}"#);
    }
    let with_sig = format!("{}c2ln", unsecured(&claims()));
    assert!(v.validate(&with_sig, NOW_MS).is_err());
    let numeric_sub = json!({"sub": 7, "exp": NOW + 5});
    assert!(v.validate(&unsecured(&numeric_sub), NOW_MS).is_err());
}

#[test]
fn jwt_rsa_and_pss() {
    let v = validator(json!([rsa_jwk("k1", None)]));
    for alg in ["RS256", "RS384", "RS512", "PS256"] {
        let t = v.validate(&sign_rsa(alg, Some("k1"), &claims()), NOW_MS);
        assert_eq!(t.unwrap().principal, "alice", "{alg}");
    }
    // No kid: any key that fits the algorithm.
    assert!(v
        .validate(&sign_rsa("RS256", None, &claims()), NOW_MS)
        .is_ok());
    // Configurable subject claim.
    let mut v2 = v.clone();
    v2.sub_claim = "client_id".into();
    let mut c = claims();
    c["client_id"] = json!("svc");
    assert_eq!(
        v2.validate(&sign_rsa("RS256", Some("k1"), &c), NOW_MS)
            .unwrap()
            .principal,
        "svc"
    );
    assert!(v2
        .validate(&sign_rsa("RS256", Some("k1"), &claims()), NOW_MS)
        .is_err());
}

#[test]
fn jwt_claims_checked() {
    let v = validator(json!([rsa_jwk("k1", Some("RS256"))]));
    let check = |c: serde_json::Value| v.validate(&sign_rsa("RS256", Some("k1"), &c), NOW_MS);
    let with = |k: &str, val: serde_json::Value| {
        let mut c = claims();
        c[k] = val;
        c
    };
    let without = |k: &str| {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    assert!(check(claims()).is_ok());
    // Expired, within and beyond the 30 s skew.
    assert!(check(with("exp", json!(NOW - 10))).is_ok());
    assert!(check(with("exp", json!(NOW - 31))).is_err());
    assert!(check(without("exp")).is_err());
    assert!(check(without("iat")).is_err());
    assert!(check(with("nbf", json!(NOW + 60))).is_err());
    assert!(check(with("aud", json!("other"))).is_err());
    assert!(check(with("aud", json!(["other", "kafka"]))).is_ok());
    assert!(check(without("aud")).is_err());
    assert!(check(with("iss", json!("https://evil"))).is_err());
    assert!(check(without("iss")).is_err());
    assert!(check(with("sub", json!(""))).is_err());
    assert!(check(without("sub")).is_err());
    assert!(check(with("exp", json!("tomorrow"))).is_err());
    // Without expectations, audience and issuer are not checked.
    let mut open = v.clone();
    open.expected_audience.clear();
    open.expected_issuer = None;
    let mut c = claims();
    c["aud"] = json!("other");
    c["iss"] = json!("x");
    assert!(open
        .validate(&sign_rsa("RS256", Some("k1"), &c), NOW_MS)
        .is_ok());
    // Every failure is the same challenge.
    let r = check(with("aud", json!("other"))).unwrap_err();
    assert_eq!(r.json(), r#"{"status":"invalid_token"}"#);
}

#[test]
fn jwt_bad_signature_kid_and_alg_confusion() {
    let ec = ec_key(&sig::ECDSA_P256_SHA256_FIXED_SIGNING);
    let v = validator(json!([
        rsa_jwk("rsa", Some("RS256")),
        ec_jwk(&ec, "P-256", "ec")
    ]));
    assert!(v
        .validate(&sign_ec(&ec, "ES256", "ec", &claims()), NOW_MS)
        .is_ok());
    // A tampered payload.
    let good = sign_rsa("RS256", Some("rsa"), &claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let evil = b64(with_sub("mallory").to_string().as_bytes());
    parts[1] = &evil;
    assert!(v.validate(&parts.join("."), NOW_MS).is_err());
    // A signature by another EC key under the right kid.
    let other = ec_key(&sig::ECDSA_P256_SHA256_FIXED_SIGNING);
    assert!(v
        .validate(&sign_ec(&other, "ES256", "ec", &claims()), NOW_MS)
        .is_err());
    // Unknown kid asks the provider to refresh.
    assert!(v
        .validate(&sign_rsa("RS256", Some("nope"), &claims()), NOW_MS)
        .is_err());
    // The key's alg is RS256: PS256 and RS512 with it are refused.
    assert!(v
        .validate(&sign_rsa("PS256", Some("rsa"), &claims()), NOW_MS)
        .is_err());
    assert!(v
        .validate(&sign_rsa("RS512", Some("rsa"), &claims()), NOW_MS)
        .is_err());
    // "none" and HMAC (keyed with the public key: the classic confusion).
    let none = format!(
        "{}.",
        signing_input(&json!({"alg": "none", "kid": "rsa"}), &claims())
    );
    assert!(v.validate(&none, NOW_MS).is_err());
    let hs_input = signing_input(&json!({"alg": "HS256", "kid": "rsa"}), &claims());
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, RSA_N.as_bytes()),
        hs_input.as_bytes(),
    );
    assert!(v
        .validate(&format!("{hs_input}.{}", b64(mac.as_ref())), NOW_MS)
        .is_err());
    // ES384 over a P-256 key; an RSA alg over the EC key.
    assert!(v
        .validate(&sign_ec(&ec, "ES384", "ec", &claims()), NOW_MS)
        .is_err());
    let p384 = ec_key(&sig::ECDSA_P384_SHA384_FIXED_SIGNING);
    let v384 = validator(json!([ec_jwk(&p384, "P-384", "k")]));
    assert!(v384
        .validate(&sign_ec(&p384, "ES384", "k", &claims()), NOW_MS)
        .is_ok());
    assert!(v384
        .validate(&sign_ec(&p384, "ES256", "k", &claims()), NOW_MS)
        .is_err());
    // Malformed tokens.
    for bad in [
        "",
        "x",
        "a.b.c",
        "e30.e30.",
        "e30.e30.e30.e30",
        "eyJhbGciOiJSUzI1NiJ9.!.x",
    ] {
        assert!(v.validate(bad, NOW_MS).is_err(), "{bad}");
    }
}

fn with_sub(sub: &str) -> serde_json::Value {
    let mut c = claims();
    c["sub"] = json!(sub);
    c
}

struct Counting {
    set: Option<Arc<JwkSet>>,
    refreshes: std::sync::Mutex<Vec<Option<String>>>,
}

impl JwksProvider for Counting {
    fn jwks(&self) -> Option<Arc<JwkSet>> {
        self.set.clone()
    }
    fn refresh_soon(&self, kid: Option<&str>) {
        self.refreshes.lock().unwrap().push(kid.map(String::from));
    }
}

#[test]
fn unknown_kid_requests_a_refresh() {
    let set = JwkSet::parse(
        json!({"keys": [rsa_jwk("k1", None)]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    for set in [Some(Arc::new(set)), None] {
        let p = Arc::new(Counting {
            set,
            refreshes: Default::default(),
        });
        let v = JwtValidator::new(p.clone());
        assert!(v
            .validate(&sign_rsa("RS256", Some("k2"), &claims()), NOW_MS)
            .is_err());
        assert_eq!(*p.refreshes.lock().unwrap(), vec![Some("k2".to_string())]);
    }
}

#[test]
fn jwks_parsing() {
    let set = JwkSet::parse(
        json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0"},
            {"kty": "OKP", "crv": "Ed25519", "x": "AA"},
            {"kty": "RSA", "use": "enc", "n": RSA_N, "e": "AQAB"},
            rsa_jwk("k1", Some("RS256")),
        ]})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(set.keys.len(), 1);
    assert_eq!(set.keys[0].kid.as_deref(), Some("k1"));
    for bad in [
        &b"not json"[..],
        b"{}",
        b"{\"keys\": 3}",
        b"{\"keys\": [{\"kty\": \"RSA\", \"n\": \"!!\", \"e\": \"AQAB\"}]}",
        b"{\"keys\": [{\"kty\": \"RSA\", \"e\": \"AQAB\"}]}",
        b"{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": \"AA\", \"y\": \"AA\"}]}",
    ] {
        assert!(JwkSet::parse(bad).is_err());
    }
}

fn server(validator: Validator, now_ms: i64) -> OAuthBearerServer {
    OAuthBearerServer::new(Arc::new(OAuthBearerConfig {
        validator,
        clock: Arc::new(move || now_ms),
    }))
}

fn first(token: &str) -> Vec<u8> {
    format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
}

#[test]
fn exchange() {
    let token = unsecured(&claims());
    let mut s = server(Validator::Unsecured(UnsecuredValidator::default()), NOW_MS);
    assert_eq!(
        s.step(&first(&token)).unwrap(),
        Step::Done {
            principal: "alice".into(),
            response: vec![]
        }
    );
    assert_eq!(s.credential_lifetime_ms(), Some(3_600_000));
    assert!(s.is_complete());
    assert_eq!(s.step(b"\x01").unwrap_err(), AuthError::IllegalState);

    // Invalid token: the error challenge, then the failure on \x01.
    let mut s = server(
        Validator::Unsecured(UnsecuredValidator::default()),
        NOW_MS + 3_600_000,
    );
    assert_eq!(
        s.step(&first(&token)).unwrap(),
        Step::Continue(br#"{"status":"invalid_token"}"#.to_vec())
    );
    let err = s.step(b"\x01").unwrap_err();
    assert_eq!(err.to_string(), r#"{"status":"invalid_token"}"#);
    assert!(err.detail().unwrap().contains("Expiration Time"), "{err:?}");
    assert_eq!(s.step(b"\x01").unwrap_err(), AuthError::IllegalState);

    // Malformed: Kafka's generic message, the reason logged.
    let mut s = server(Validator::Unsecured(UnsecuredValidator::default()), NOW_MS);
    let err = s.step(b"garbage").unwrap_err();
    assert_eq!(
        err.to_string(),
        "Authentication failed during authentication due to invalid credentials with SASL mechanism OAUTHBEARER"
    );
    assert!(err.detail().is_some());

    // An authorization id other than the principal.
    let mut s = server(Validator::Unsecured(UnsecuredValidator::default()), NOW_MS);
    let msg = format!("n,a=bob,\x01auth=Bearer {token}\x01\x01");
    assert!(s
        .step(msg.as_bytes())
        .unwrap_err()
        .to_string()
        .contains("different from the token's principal name (alice)"));
    let mut s = server(Validator::Unsecured(UnsecuredValidator::default()), NOW_MS);
    let msg = format!("n,a=alice,\x01auth=Bearer {token}\x01ext=v\x01\x01");
    assert!(matches!(s.step(msg.as_bytes()), Ok(Step::Done { .. })));
    assert_eq!(s.extensions(), &[("ext".to_string(), "v".to_string())]);
}

#[test]
fn through_the_authenticator() {
    use crate::{Authenticator, Mechanism, StaticCredentials};
    let auth = Authenticator::new(
        vec![Mechanism::OAuthBearer],
        Arc::new(StaticCredentials::default()),
    );
    assert_eq!(auth.mechanisms(), vec!["OAUTHBEARER"]);
    // Enabled but without a validator: unsupported.
    assert!(auth.start("OAUTHBEARER").is_err());
    let auth = auth.with_oauthbearer(OAuthBearerConfig {
        validator: Validator::Jwt(validator(json!([rsa_jwk("k1", None)]))),
        clock: Arc::new(|| NOW_MS),
    });
    let mut s = auth.start("OAUTHBEARER").unwrap();
    assert_eq!(s.mechanism(), Mechanism::OAuthBearer);
    let t = sign_rsa("RS256", Some("k1"), &claims());
    assert!(matches!(s.step(&first(&t)), Ok(Step::Done { .. })));
    assert_eq!(s.credential_lifetime_ms(), Some(3_600_000));
}

proptest::proptest! {
    #[test]
    fn parsing_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let _ = ClientInitialResponse::parse(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = UnsecuredValidator::default().validate(&text, NOW_MS);
        let _ = validator(json!([rsa_jwk("k1", None)])).validate(&text, NOW_MS);
        let _ = JwkSet::parse(&bytes);
    }
}
