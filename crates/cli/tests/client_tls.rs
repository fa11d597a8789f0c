//! The Rust client and the command-line tools over TLS (`security.protocol=SSL`)
//! against a real `gregor` process with a PLAINTEXT and an SSL listener:
//! produce and consume, an mTLS principal that ACLs see, a broker
//! certificate from a CA the client does not trust refused with a clear
//! error, the host name check (and `ssl.endpoint.identification.algorithm`
//! empty), and `gregor topics`, `features` and `configs --entity-default`
//! with a `--command-config` of Java-style `ssl.*` keys.
//!
//! Certificates are made in the test with rcgen.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use gregor_client::admin::NewTopic;
use gregor_client::{Admin, ClientConfig, Consumer, Producer, ProducerRecord, TopicPartition};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

const START_DEADLINE: Duration = Duration::from_secs(30);

/// A CA (certificate PEM, issuer) and the certificates it signs.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let pem = params.self_signed(&key).unwrap().pem();
    Ca {
        pem,
        issuer: Issuer::new(params, key),
    }
}

/// (certificate PEM, key PEM) signed by `ca`.
fn leaf(ca: &Ca, sans: &[&str], dn: &[(DnType, &str)], client: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    for (t, v) in dn {
        params.distinguished_name.push(t.clone(), *v);
    }
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn make() -> Certs {
        let dir = tempfile::Builder::new()
            .prefix("gregor-tls-")
            .tempdir()
            .unwrap();
        let main = ca("gregor test ca");
        let other = ca("gregor other ca");
        let (server, server_key) = leaf(
            &main,
            &["127.0.0.1", "localhost"],
            &[(DnType::CommonName, "localhost")],
            false,
        );
        // A certificate for another host name only.
        let (misnamed, misnamed_key) = leaf(
            &main,
            &["other.example"],
            &[(DnType::CommonName, "other.example")],
            false,
        );
        let (alice, alice_key) = leaf(&main, &[], &[(DnType::CommonName, "alice")], true);
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", &main.pem);
        write("other-ca.pem", &other.pem);
        write("server-keystore.pem", &format!("{server_key}{server}"));
        write(
            "misnamed-keystore.pem",
            &format!("{misnamed_key}{misnamed}"),
        );
        write("alice.pem", &alice);
        write("alice.key", &alice_key);
        write("alice-keystore.pem", &format!("{alice_key}{alice}"));
        Certs { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A `gregor server` with a PLAINTEXT and an SSL listener; killed on drop.
struct Broker {
    child: Child,
    _data: tempfile::TempDir,
    ssl_port: u16,
}

impl Broker {
    fn start(certs: &Certs, extra: &[&str]) -> Broker {
        Broker::start_with_keystore(certs, "server-keystore.pem", extra)
    }

    fn start_with_keystore(certs: &Certs, keystore: &str, extra: &[&str]) -> Broker {
        let data = tempfile::Builder::new()
            .prefix("gregor-it-")
            .tempdir()
            .unwrap();
        let mut overrides = vec![
            "listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0".to_string(),
            format!("log.dirs={}", data.path().join("data").display()),
            "ssl.keystore.type=PEM".to_string(),
            format!("ssl.keystore.location={}", certs.path(keystore).display()),
            "ssl.truststore.type=PEM".to_string(),
            format!("ssl.truststore.location={}", certs.path("ca.pem").display()),
            "ssl.client.auth=requested".to_string(),
        ];
        overrides.extend(extra.iter().map(|s| s.to_string()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gregor"));
        cmd.arg("server");
        for o in &overrides {
            cmd.arg("--override").arg(o);
        }
        let stderr = std::fs::File::create(data.path().join("stderr.log")).unwrap();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawning gregor");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut ssl_port = None;
        while ssl_port.is_none() {
            match rx.recv_timeout(START_DEADLINE) {
                Ok(line) => {
                    ssl_port = line
                        .strip_prefix("gregor: listening on SSL://127.0.0.1:")
                        .and_then(|p| p.trim().parse().ok())
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "no SSL listening line; stderr:\n{}",
                        std::fs::read_to_string(data.path().join("stderr.log")).unwrap_or_default()
                    )
                }
            }
        }
        Broker {
            child,
            _data: data,
            ssl_port: ssl_port.unwrap(),
        }
    }

    fn ssl(&self) -> String {
        format!("127.0.0.1:{}", self.ssl_port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ssl_config(bootstrap: &str, ca: &Path, client: Option<(&Path, &Path)>) -> ClientConfig {
    let mut c = ClientConfig::new()
        .with("bootstrap.servers", bootstrap)
        .unwrap()
        .with("security.protocol", "SSL")
        .unwrap()
        .with("ssl.ca.location", ca.to_str().unwrap())
        .unwrap()
        .with("request.timeout.ms", "15000")
        .unwrap();
    if let Some((cert, key)) = client {
        c.set("ssl.certificate.location", cert.to_str().unwrap())
            .unwrap();
        c.set("ssl.key.location", key.to_str().unwrap()).unwrap();
    }
    c
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn produce_and_consume_over_ssl_and_wrong_ca_is_refused() {
    let certs = Certs::make();
    let broker = Broker::start(&certs, &["num.partitions=1"]);
    let config = ssl_config(&broker.ssl(), &certs.path("ca.pem"), None);
    runtime().block_on(async {
        let admin = Admin::new(config.clone()).unwrap();
        admin
            .create_topic(NewTopic::new("tls-topic", 1, 1))
            .await
            .unwrap();
        let producer = Producer::new(config.clone()).unwrap();
        for i in 0..3 {
            producer
                .send(ProducerRecord::new("tls-topic", format!("v{i}")))
                .await
                .unwrap()
                .await
                .unwrap();
        }
        producer.close().await;
        let mut consumer = Consumer::new(
            config
                .clone()
                .with("auto.offset.reset", "earliest")
                .unwrap(),
        )
        .unwrap();
        consumer
            .assign(&[TopicPartition::new("tls-topic", 0)])
            .unwrap();
        let mut values = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while values.len() < 3 && std::time::Instant::now() < deadline {
            for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
                values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
            }
        }
        assert_eq!(values, ["v0", "v1", "v2"]);

        // The broker's certificate is not from the CA the client trusts.
        let wrong = ssl_config(&broker.ssl(), &certs.path("other-ca.pem"), None);
        let err = Admin::new(wrong)
            .unwrap()
            .list_topics(false)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SSL handshake with")
                && err.contains("not signed by a CA in ssl.ca.location"),
            "{err}"
        );
    });
}

#[test]
fn mtls_principal_is_the_certificate_dn() {
    let certs = Certs::make();
    // Only alice (her certificate's DN CN=alice, mapped by the listener's
    // rules) may do anything.
    let broker = Broker::start(
        &certs,
        &[
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            "listener.name.ssl.ssl.principal.mapping.rules=RULE:^CN=(.*)$/$1-mapped/,DEFAULT",
            "super.users=User:alice-mapped",
        ],
    );
    let alice = ssl_config(
        &broker.ssl(),
        &certs.path("ca.pem"),
        Some((&certs.path("alice.pem"), &certs.path("alice.key"))),
    );
    let anonymous = ssl_config(&broker.ssl(), &certs.path("ca.pem"), None);
    runtime().block_on(async {
        Admin::new(alice)
            .unwrap()
            .create_topic(NewTopic::new("alice-topic", 1, 1))
            .await
            .unwrap();
        let err = Admin::new(anonymous)
            .unwrap()
            .create_topic(NewTopic::new("anon-topic", 1, 1))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("AUTHORIZATION_FAILED"), "{err}");
    });
}

#[test]
fn hostname_check_and_topics_tool_with_java_style_command_config() {
    let certs = Certs::make();
    // The broker's certificate names other.example, not 127.0.0.1.
    let broker =
        Broker::start_with_keystore(&certs, "misnamed-keystore.pem", &["num.partitions=1"]);
    let checked = ssl_config(&broker.ssl(), &certs.path("ca.pem"), None);
    let err = runtime()
        .block_on(async { Admin::new(checked).unwrap().list_topics(false).await })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not name this host")
            && err.contains("ssl.endpoint.identification.algorithm"),
        "{err}"
    );
    // With ssl.endpoint.identification.algorithm empty (Java's "none"), the
    // chain is still checked but the name is not.
    let props = certs.path("client-ssl.properties");
    std::fs::write(
        &props,
        format!(
            "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n\
             ssl.keystore.type=PEM\nssl.keystore.location={}\nssl.endpoint.identification.algorithm=\n",
            certs.path("ca.pem").display(),
            certs.path("alice-keystore.pem").display()
        ),
    )
    .unwrap();
    let tool = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_gregor"))
            .arg(args[0])
            .args(["--bootstrap-server", &broker.ssl()])
            .args(["--command-config", props.to_str().unwrap()])
            .args(&args[1..])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gregor {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    tool(&["topics", "--create", "--topic", "cli-tls"]);
    assert_eq!(tool(&["topics", "--list"]).trim(), "cli-tls");
    // Requests the client's Admin has no method for go over the same TLS.
    let features = tool(&["features", "describe"]);
    assert!(
        features.contains("Feature: transaction.version"),
        "{features}"
    );
    let defaults = tool(&[
        "configs",
        "--describe",
        "--entity-type",
        "brokers",
        "--entity-default",
    ]);
    assert!(
        defaults.contains("Default configs for brokers in the cluster"),
        "{defaults}"
    );
}
