//! `gregor server` takes Kafka's whole broker config vocabulary: a
//! `server.properties` written for Kafka (here kafka-python's test broker
//! config) starts it, the keys Gregor does not act on are named once in a
//! warning and in DescribeConfigs' documentation, and a misspelt key stops the
//! start with a suggestion. Dynamic broker and group configs follow Kafka's rules.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Client, ConfigServer};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

const INVALID_REQUEST: i16 = 42;
const INVALID_CONFIG: i16 = 40;

/// kafka-python's servers/resources/default/kafka.properties (KRaft), with
/// its SASL, SSL and ACL fragments filled in as its fixtures do.
fn kafka_python_properties(log_dir: &Path) -> String {
    format!(
        "process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:19093
listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:19093
inter.broker.listener.name=PLAINTEXT
sasl.enabled.mechanisms=PLAIN
sasl.mechanism.inter.broker.protocol=PLAIN
ssl.keystore.location=/tmp/ssl/kafka.server.keystore.jks
ssl.keystore.password=foobar
ssl.key.password=foobar
ssl.truststore.location=/tmp/ssl/kafka.server.truststore.jks
ssl.truststore.password=foobar
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=true
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs={}
num.partitions=2
default.replication.factor=1
replica.lag.time.max.ms=1000
replica.socket.timeout.ms=1000
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
log.cleaner.enable=false
offsets.commit.timeout.ms=500
offsets.topic.num.partitions=2
offsets.topic.replication.factor=1
group.min.session.timeout.ms=1000
group.initial.rebalance.delay.ms=0
listener.name.plaintext.sasl.enabled.mechanisms=PLAIN
",
        log_dir.display()
    )
}

/// A `gregor server --config FILE` process; killed when dropped.
fn stderr_file(path: &Path) -> Stdio {
    Stdio::from(std::fs::File::create(path).expect("stderr file"))
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn describe(c: &mut Client, ty: i8, name: &str, keys: &[&str]) -> DescribeConfigsResult {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(ty)
            .with_resource_name(sb(name))
            .with_configuration_keys(
                (!keys.is_empty()).then(|| keys.iter().map(|k| sb(k)).collect()),
            )]);
    c.send(4, &req).results.remove(0)
}

/// IncrementalAlterConfigs SET of one config: (error code, message).
fn set(c: &mut Client, ty: i8, name: &str, key: &str, value: &str) -> (i16, String) {
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(ty)
            .with_resource_name(sb(name))
            .with_configs(vec![AlterableConfig::default()
                .with_name(sb(key))
                .with_config_operation(0)
                .with_value(Some(sb(value)))]),
    ]);
    let r = c.send(1, &req).responses.remove(0);
    (
        r.error_code,
        r.error_message.map(|m| m.to_string()).unwrap_or_default(),
    )
}

#[test]
fn kafka_python_server_properties_start_gregor() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.properties");
    std::fs::write(&config, kafka_python_properties(&dir.path().join("data"))).unwrap();
    // Its config names a controller quorum, so (as with Kafka, and as
    // kafka-python's fixture does) the dirs are formatted first.
    let format = Command::new(env!("CARGO_BIN_EXE_gregor"))
        .args(["storage", "format", "-t", "MkU3OEVBNTcwNTJENDM2Qg", "-c"])
        .arg(&config)
        .output()
        .expect("running gregor storage format");
    assert!(
        format.status.success(),
        "format: {}",
        String::from_utf8_lossy(&format.stderr)
    );
    let stderr = dir.path().join("stderr.log");
    let server = ConfigServer::start(&config, stderr_file(&stderr)).unwrap_or_else(|status| {
        panic!(
            "gregor refused kafka-python's config ({status}):\n{}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        )
    });
    let mut c = Client::connect(server.port);

    // One warning line names the keys that have no effect.
    let log = std::fs::read_to_string(&stderr).unwrap();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("accepted but have no effect"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    for key in ["offsets.commit.timeout.ms", "replica.lag.time.max.ms"] {
        assert!(
            warnings[0].contains(key),
            "{key} missing in {}",
            warnings[0]
        );
    }
    assert!(!warnings[0].contains("num.partitions"), "{}", warnings[0]);
    // The authorizer acts (ACL enforcement).
    assert!(
        !warnings[0].contains("authorizer.class.name"),
        "{}",
        warnings[0]
    );

    // DescribeConfigs reports the static value and says it has no effect.
    let r = describe(
        &mut c,
        4,
        "1",
        &["offsets.commit.timeout.ms", "num.partitions"],
    );
    assert_eq!(r.error_code, 0);
    let get = |n: &str| {
        r.configs
            .iter()
            .find(|e| e.name.as_str() == n)
            .unwrap_or_else(|| panic!("{n} not described"))
    };
    let commit = get("offsets.commit.timeout.ms");
    assert_eq!(commit.value.as_deref(), Some("500"));
    assert_eq!(commit.config_source, 4, "STATIC_BROKER_CONFIG");
    assert!(commit.read_only);
    let doc = commit.documentation.as_ref().unwrap().to_string();
    assert!(doc.contains("no effect in Gregor"), "{doc}");
    let partitions = get("num.partitions");
    assert!(!partitions
        .documentation
        .as_ref()
        .unwrap()
        .contains("no effect"));

    // Dynamic broker configs follow Kafka's DynamicBrokerConfig rules.
    let relogin = "sasl.kerberos.min.time.before.relogin";
    assert_eq!(set(&mut c, 4, "1", relogin, "58000").0, 0);
    let (code, msg) = set(&mut c, 4, "", relogin, "58000");
    assert_eq!(code, INVALID_REQUEST);
    assert_eq!(
        msg,
        format!("Cannot update these configs at default cluster level, broker id must be specified: Set({relogin})")
    );
    let (code, msg) = set(&mut c, 4, "1", "offsets.commit.timeout.ms", "100");
    assert_eq!(code, INVALID_REQUEST);
    assert_eq!(
        msg,
        "Cannot update these configs dynamically: Set(offsets.commit.timeout.ms)"
    );
    let r = describe(&mut c, 4, "1", &[relogin]);
    assert_eq!(r.configs[0].value.as_deref(), Some("58000"));
    assert_eq!(r.configs[0].config_source, 2, "DYNAMIC_BROKER_CONFIG");

    // Group configs, bounded by the broker's group.consumer.* settings.
    let (code, msg) = set(&mut c, 32, "g1", "consumer.session.timeout.ms", "1000");
    assert_eq!(code, INVALID_CONFIG);
    assert_eq!(
        msg,
        "consumer.session.timeout.ms must be greater than or equal to group.consumer.min.session.timeout.ms"
    );
    assert_eq!(
        set(&mut c, 32, "g1", "consumer.session.timeout.ms", "50000").0,
        0
    );
    let r = describe(&mut c, 32, "g1", &[]);
    assert_eq!(r.error_code, 0);
    let session = r
        .configs
        .iter()
        .find(|e| e.name.as_str() == "consumer.session.timeout.ms")
        .unwrap();
    assert_eq!(session.value.as_deref(), Some("50000"));
    assert_eq!(session.config_source, 8, "GROUP_CONFIG");
    let r = describe(&mut c, 32, "g2", &["consumer.heartbeat.interval.ms"]);
    assert_eq!(r.configs[0].value.as_deref(), Some("5000"));
    assert_eq!(r.configs[0].config_source, 5, "DEFAULT_CONFIG");
}

#[test]
fn misspelt_key_is_refused_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.properties");
    let text = kafka_python_properties(&dir.path().join("data"))
        .replace("offsets.commit.timeout.ms", "offsets.comit.timeout.ms");
    std::fs::write(&config, text).unwrap();
    let stderr = dir.path().join("stderr.log");
    let status = match ConfigServer::start(&config, stderr_file(&stderr)) {
        Ok(_) => panic!("gregor started with a misspelt key"),
        Err(status) => status,
    };
    assert!(!status.success());
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(
        log.contains(
            "unknown configuration 'offsets.comit.timeout.ms'; did you mean 'offsets.commit.timeout.ms'?"
        ),
        "{log}"
    );
}

/// `gregor configs --entity-type groups` works as kafka-configs.sh does.
#[test]
fn configs_tool_describes_and_alters_group_configs() {
    let b = common::Broker::start();
    let configs = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_gregor"))
            .arg("configs")
            .arg("--bootstrap-server")
            .arg(format!("127.0.0.1:{}", b.port))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running gregor configs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let group = ["--entity-type", "groups", "--entity-name", "g"];
    let (ok, out, err) = configs(
        &[
            &["--alter"][..],
            &group,
            &["--add-config", "consumer.session.timeout.ms=50000"],
        ]
        .concat(),
    );
    assert!(ok, "{err}");
    assert_eq!(out, "Completed updating config for group g.\n");
    let (ok, out, err) = configs(&[&["--describe"][..], &group].concat());
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "Dynamic configs for group g are:\n  consumer.session.timeout.ms=50000 sensitive=false synonyms={DYNAMIC_GROUP_CONFIG:consumer.session.timeout.ms=50000}\n"
    );
    let (ok, out, _) = configs(&["--describe", "--group", "g", "--all"]);
    assert!(ok);
    assert!(out.starts_with("All configs for group g are:\n"), "{out}");
    assert!(
        out.contains("\n  consumer.heartbeat.interval.ms=5000 sensitive=false synonyms={DEFAULT_CONFIG:consumer.heartbeat.interval.ms=5000}\n"),
        "{out}"
    );
    // Outside the broker's bounds: Kafka's INVALID_CONFIG message.
    let (ok, _, err) = configs(
        &[
            &["--alter"][..],
            &group,
            &["--add-config", "consumer.session.timeout.ms=1000"],
        ]
        .concat(),
    );
    assert!(!ok);
    assert!(
        err.contains("consumer.session.timeout.ms must be greater than or equal to group.consumer.min.session.timeout.ms"),
        "{err}"
    );
    let (ok, _, err) = configs(
        &[
            &["--alter"][..],
            &group,
            &["--delete-config", "consumer.session.timeout.ms"],
        ]
        .concat(),
    );
    assert!(ok, "{err}");
    let (_, out, _) = configs(&[&["--describe"][..], &group].concat());
    assert_eq!(out, "Dynamic configs for group g are:\n");
}
