//! Creates a topic, describes it and the cluster, then lists groups.
//!
//! `cargo run -p gregor-client --example admin -- localhost:9092 my-topic`

use gregor_client::admin::{ConfigResource, NewTopic};
use gregor_client::{Admin, ClientConfig};

#[tokio::main]
async fn main() -> gregor_client::Result<()> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "localhost:9092".into());
    let topic = args.next().unwrap_or_else(|| "example".into());

    let admin = Admin::new(ClientConfig::from_map([(
        "bootstrap.servers",
        bootstrap.as_str(),
    )])?)?;
    let cluster = admin.describe_cluster().await?;
    println!(
        "cluster {} controller {}",
        cluster.cluster_id, cluster.controller_id
    );
    for b in &cluster.brokers {
        println!("  broker {} at {}", b.node_id, b.address());
    }

    let created = admin
        .create_topics(
            &[NewTopic::new(topic.clone(), 3, 1).with_config("retention.ms", "86400000")],
            false,
        )
        .await?;
    for (name, result) in created {
        match result {
            Ok(t) => println!("created {name} ({} partitions)", t.num_partitions),
            Err(e) => println!("{name}: {e}"),
        }
    }
    for t in admin.describe_topics(&[topic.as_str()]).await? {
        println!("{} id {}", t.name, t.topic_id);
        for p in &t.partitions {
            println!(
                "  partition {} leader {} replicas {:?} isr {:?}",
                p.partition, p.leader, p.replicas, p.isr
            );
        }
    }
    let resource = ConfigResource::Topic(topic.clone());
    let configs = admin
        .describe_configs(std::slice::from_ref(&resource))
        .await?;
    for entry in configs[&resource]
        .iter()
        .filter(|e| e.name.starts_with("retention"))
    {
        println!(
            "  {} = {:?} ({})",
            entry.name,
            entry.value,
            entry.source.name()
        );
    }
    for g in admin.list_groups().await? {
        println!("group {} ({}, {})", g.group_id, g.protocol_type, g.state);
    }
    Ok(())
}
