//! The Rust client and the command-line tools over SASL_PLAINTEXT against a
//! real `gregor` process: the tools that send requests `Admin` has no method
//! for (`features`, `configs --entity-default`) honour `--command-config`,
//! and SASL/OAUTHBEARER with Kafka's unsecured login (`sasl.jaas.config`),
//! librdkafka's `sasl.oauthbearer.config` and a static
//! `sasl.oauthbearer.token` produces and consumes, while a token without the
//! required scope, or an expired one, is refused with
//! SASL_AUTHENTICATION_FAILED and the server's JSON status.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use gregor_client::admin::NewTopic;
use gregor_client::{Admin, ClientConfig, Consumer, Producer, ProducerRecord, TopicPartition};

const START_DEADLINE: Duration = Duration::from_secs(30);
const LOGIN: &str = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";

struct Broker {
    child: Child,
    data: tempfile::TempDir,
    sasl_port: u16,
}

impl Broker {
    /// PLAIN (alice / alice-secret) and OAUTHBEARER with the unsecured
    /// validator requiring scope `kafka`.
    fn start() -> Broker {
        let data = tempfile::Builder::new()
            .prefix("gregor-it-")
            .tempdir()
            .unwrap();
        let overrides = [
            "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0".to_string(),
            format!("log.dirs={}", data.path().join("data").display()),
            "num.partitions=1".to_string(),
            "sasl.enabled.mechanisms=PLAIN,OAUTHBEARER".to_string(),
            "listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"alice-secret\";".to_string(),
            format!("listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config={LOGIN} required unsecuredValidatorRequiredScope=\"kafka\";"),
        ];
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
        let mut sasl_port = None;
        while sasl_port.is_none() {
            match rx.recv_timeout(START_DEADLINE) {
                Ok(line) => {
                    sasl_port = line
                        .strip_prefix("gregor: listening on SASL_PLAINTEXT://127.0.0.1:")
                        .and_then(|p| p.trim().parse().ok())
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "no SASL_PLAINTEXT listening line; stderr:\n{}",
                        std::fs::read_to_string(data.path().join("stderr.log")).unwrap_or_default()
                    )
                }
            }
        }
        Broker {
            child,
            data,
            sasl_port: sasl_port.unwrap(),
        }
    }

    fn sasl(&self) -> String {
        format!("127.0.0.1:{}", self.sasl_port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(bootstrap: &str, pairs: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new()
        .with("bootstrap.servers", bootstrap)
        .unwrap()
        .with("security.protocol", "SASL_PLAINTEXT")
        .unwrap()
        .with("request.timeout.ms", "15000")
        .unwrap();
    for (k, v) in pairs {
        c.set(k, v).unwrap();
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

fn oauth(bootstrap: &str, jaas_options: &str) -> ClientConfig {
    config(
        bootstrap,
        &[
            ("sasl.mechanism", "OAUTHBEARER"),
            (
                "sasl.jaas.config",
                &format!("{LOGIN} required {jaas_options};"),
            ),
        ],
    )
}

/// Unsigned JWT `{"alg":"none"}` with `claims`, as a static token.
fn unsecured_jwt(claims: &str) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(claims))
}

async fn produce_and_consume(config: &ClientConfig, topic: &str) {
    Admin::new(config.clone())
        .unwrap()
        .create_topic(NewTopic::new(topic, 1, 1))
        .await
        .unwrap();
    let producer = Producer::new(config.clone()).unwrap();
    for i in 0..3 {
        producer
            .send(ProducerRecord::new(topic, format!("v{i}")))
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
    consumer.assign(&[TopicPartition::new(topic, 0)]).unwrap();
    let mut values = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while values.len() < 3 && std::time::Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(values, ["v0", "v1", "v2"]);
}

#[test]
fn oauthbearer_produces_and_consumes_and_bad_tokens_are_refused() {
    let broker = Broker::start();
    let bootstrap = broker.sasl();
    runtime().block_on(async {
        // Kafka's unsecured login, as the Java client configures it.
        let jaas = oauth(
            &bootstrap,
            r#"unsecuredLoginStringClaim_sub="alice" unsecuredLoginListClaim_scope=",kafka,other""#,
        );
        produce_and_consume(&jaas, "oauth-jaas").await;

        // librdkafka's sasl.oauthbearer.config.
        let rdkafka = config(
            &bootstrap,
            &[
                ("sasl.mechanism", "OAUTHBEARER"),
                ("enable.sasl.oauthbearer.unsecure.jwt", "true"),
                ("sasl.oauthbearer.config", "principal=bob scope=kafka"),
            ],
        );
        produce_and_consume(&rdkafka, "oauth-rdkafka").await;

        // A static token.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let token = unsecured_jwt(&format!(
            r#"{{"sub":"carol","iat":{now},"exp":{},"scope":"kafka"}}"#,
            now + 600
        ));
        let fixed = config(
            &bootstrap,
            &[
                ("sasl.mechanism", "OAUTHBEARER"),
                ("sasl.oauthbearer.token", &token),
            ],
        );
        let topics = Admin::new(fixed).unwrap().list_topics(false).await.unwrap();
        assert!(topics.iter().any(|t| t.name == "oauth-jaas"), "{topics:?}");

        // Without the required scope: the server's JSON status comes back.
        let unscoped = oauth(&bootstrap, r#"unsecuredLoginStringClaim_sub="alice""#);
        let err = Admin::new(unscoped)
            .unwrap()
            .list_topics(false)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SASL_AUTHENTICATION_FAILED") && err.contains("insufficient_scope"),
            "{err}"
        );

        // Expired (its lifetime is negative).
        let expired = oauth(
            &bootstrap,
            r#"unsecuredLoginStringClaim_sub="alice" unsecuredLoginListClaim_scope=",kafka" unsecuredLoginLifetimeSeconds="-100""#,
        );
        let err = Admin::new(expired)
            .unwrap()
            .list_topics(false)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SASL_AUTHENTICATION_FAILED") && err.contains("invalid_token"),
            "{err}"
        );
    });
}

#[test]
fn tools_without_an_admin_method_honour_command_config() {
    let broker = Broker::start();
    let props = broker.data.path().join("client-sasl.properties");
    std::fs::write(
        &props,
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n\
         sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"alice\" password=\"alice-secret\";\n",
    )
    .unwrap();
    let tool = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_gregor"))
            .arg(args[0])
            .args(["--bootstrap-server", &broker.sasl()])
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
