//! KIP-848 consumer groups against a real broker, in raw protocol: two
//! members heartbeat (ConsumerGroupHeartbeat v1) until they converge on a
//! disjoint split of a 6-partition topic; ConsumerGroupDescribe and
//! ListGroups show the group; the group survives a restart.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Broker, Client};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const GROUP: &str = "kip848";

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_owned())
}

/// A consumer that owns exactly what its last assignment said.
struct Member {
    id: String,
    epoch: i32,
    owned: BTreeSet<i32>,
    topic: uuid::Uuid,
}

impl Member {
    fn new(id: &str, topic: uuid::Uuid) -> Self {
        Self {
            id: id.into(),
            epoch: 0,
            owned: BTreeSet::new(),
            topic,
        }
    }

    fn beat(&mut self, c: &mut Client) -> ConsumerGroupHeartbeatResponse {
        let mut r = ConsumerGroupHeartbeatRequest::default();
        r.group_id = GroupId(s(GROUP));
        r.member_id = s(&self.id);
        r.member_epoch = self.epoch;
        r.rebalance_timeout_ms = -1;
        let mut tp = TopicPartitions::default();
        tp.topic_id = self.topic;
        tp.partitions = self.owned.iter().copied().collect();
        r.topic_partitions = Some(if self.owned.is_empty() {
            vec![]
        } else {
            vec![tp]
        });
        if self.epoch == 0 {
            r.rebalance_timeout_ms = 30_000;
            r.subscribed_topic_names = Some(vec![TopicName(s("t"))]);
        }
        let resp = c.send(1, &r);
        assert_eq!(resp.error_code, 0, "{resp:?}");
        self.epoch = resp.member_epoch;
        if let Some(a) = &resp.assignment {
            self.owned = a
                .topic_partitions
                .iter()
                .filter(|tp| tp.topic_id == self.topic)
                .flat_map(|tp| tp.partitions.iter().copied())
                .collect();
        }
        resp
    }
}

fn converge(c: &mut Client, a: &mut Member, b: &mut Member) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        a.beat(c);
        b.beat(c);
        assert!(
            a.owned.is_disjoint(&b.owned),
            "{:?} / {:?}",
            a.owned,
            b.owned
        );
        if a.epoch == b.epoch && a.owned.len() == 3 && b.owned.len() == 3 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no convergence: {:?} {:?}",
            a.owned,
            b.owned
        );
    }
}

fn describe(c: &mut Client) -> consumer_group_describe_response::DescribedGroup {
    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = vec![GroupId(s(GROUP))];
    let mut r: ConsumerGroupDescribeResponse = c.send(1, &req);
    r.groups.remove(0)
}

#[test]
fn two_members_converge_and_survive_restart() {
    let mut broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("t", 6, &[]);
    let topic = c.topic_id("t");

    let versions = c.api_versions();
    let hb = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == 68)
        .expect("ConsumerGroupHeartbeat advertised");
    assert_eq!((hb.min_version, hb.max_version), (0, 1));

    let mut a = Member::new("member-a-0000000000000", topic);
    let mut b = Member::new("member-b-0000000000000", topic);
    let r = a.beat(&mut c);
    assert_eq!(r.member_epoch, 1);
    assert_eq!(a.owned, (0..6).collect());
    b.beat(&mut c);
    converge(&mut c, &mut a, &mut b);
    assert_eq!(&a.owned | &b.owned, (0..6).collect());

    let d = describe(&mut c);
    assert_eq!(d.error_code, 0);
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.assignor_name.as_str(), "uniform");
    assert_eq!(d.members.len(), 2);
    for m in &d.members {
        assert_eq!(m.assignment.topic_partitions[0].topic_name.as_str(), "t");
        assert_eq!(m.assignment.topic_partitions[0].partitions.len(), 3);
    }

    let mut lg = ListGroupsRequest::default();
    lg.types_filter = vec![s("consumer")];
    let groups: ListGroupsResponse = c.send(5, &lg);
    assert!(groups
        .groups
        .iter()
        .any(|g| g.group_id.as_str() == GROUP && g.group_type.as_str() == "consumer"));

    // A classic member may not join a consumer group.
    let mut join = JoinGroupRequest::default();
    join.group_id = GroupId(s(GROUP));
    join.protocol_type = s("consumer");
    join.session_timeout_ms = 10_000;
    join.rebalance_timeout_ms = 10_000;
    let mut p = join_group_request::JoinGroupRequestProtocol::default();
    p.name = s("range");
    join.protocols.push(p);
    let jr: JoinGroupResponse = c.send(5, &join);
    assert_eq!(jr.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");

    // After a restart the group is there with the same epochs and
    // assignments; members carry on heartbeating.
    broker.stop_clean();
    broker.restart();
    let mut c = Client::connect(broker.port);
    let epoch = a.epoch;
    let (own_a, own_b) = (a.owned.clone(), b.owned.clone());
    let r = a.beat(&mut c);
    assert_eq!(r.member_epoch, epoch);
    b.beat(&mut c);
    assert_eq!((&a.owned, &b.owned), (&own_a, &own_b));
    assert_eq!(describe(&mut c).group_state.as_str(), "Stable");

    // b leaves: a gets everything at the next epoch.
    let mut leave = ConsumerGroupHeartbeatRequest::default();
    leave.group_id = GroupId(s(GROUP));
    leave.member_id = s(&b.id);
    leave.member_epoch = -1;
    let lr: ConsumerGroupHeartbeatResponse = c.send(1, &leave);
    assert_eq!((lr.error_code, lr.member_epoch), (0, -1));
    let r = a.beat(&mut c);
    assert_eq!(r.member_epoch, epoch + 1);
    assert_eq!(a.owned, (0..6).collect());
}
