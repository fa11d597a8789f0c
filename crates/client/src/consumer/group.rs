//! Classic group membership: JoinGroup, SyncGroup, Heartbeat, LeaveGroup.
//!
//! The consumer's `poll` drives joins (so rebalance callbacks run on the
//! application's task, as in Java); a heartbeat task keeps the session alive
//! between polls and notices rebalances, fencing, and a `poll` that has not
//! been called within `max.poll.interval.ms` (then it leaves the group, so
//! the partitions go to members that are making progress).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};

use super::fetcher::Shared;
use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::conn::Connection;
use crate::error::{codes, is_coordinator_error, Error, Result};
use crate::group_ops::{find_coordinator, sb, CommitIdentity};

#[derive(Debug)]
pub(crate) struct Membership {
    pub member_id: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub coordinator: Option<i32>,
    /// In a generation and heartbeating.
    pub stable: bool,
    pub rejoin_needed: bool,
    /// Fenced (unknown member / illegal generation): owned partitions are lost.
    pub lost: bool,
    pub last_poll: Instant,
    pub closed: bool,
}

/// The result of a completed JoinGroup.
pub(crate) struct Joined {
    pub generation: i32,
    pub member_id: String,
    pub protocol: String,
    pub leader: bool,
    /// (member id, group instance id, metadata) — only for the leader.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

pub(crate) struct Group {
    pub group_id: String,
    cfg: Arc<ClientConfig>,
    cluster: Arc<Cluster>,
    pub m: Arc<Mutex<Membership>>,
}

impl Group {
    pub fn new(group_id: String, cfg: Arc<ClientConfig>, cluster: Arc<Cluster>) -> Group {
        Group {
            group_id,
            cfg,
            cluster,
            m: Arc::new(Mutex::new(Membership {
                member_id: String::new(),
                generation: -1,
                protocol: None,
                coordinator: None,
                stable: false,
                rejoin_needed: true,
                lost: false,
                last_poll: Instant::now(),
                closed: false,
            })),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Membership> {
        self.m.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn identity(&self) -> CommitIdentity {
        let m = self.lock();
        CommitIdentity {
            generation: m.generation,
            member_id: m.member_id.clone(),
            group_instance_id: self.cfg.group_instance_id.clone(),
        }
    }

    async fn coordinator(&self) -> Result<Arc<Connection>> {
        let known = self.lock().coordinator;
        let node = match known {
            Some(n) => n,
            None => {
                let n = find_coordinator(&self.cluster, &self.group_id).await?;
                self.lock().coordinator = Some(n);
                n
            }
        };
        match self.cluster.connection(node).await {
            Ok(c) => Ok(c),
            Err(e) => {
                self.lock().coordinator = None;
                Err(e)
            }
        }
    }

    /// Forgets the coordinator after an error that says it moved.
    fn check_coordinator(&self, code: i16) {
        if is_coordinator_error(code) {
            self.lock().coordinator = None;
        }
    }

    /// JoinGroup until it completes, handling MEMBER_ID_REQUIRED (KIP-394),
    /// UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS and coordinator moves.
    pub async fn join(&self, protocols: &[(String, Bytes)]) -> Result<Joined> {
        let rebalance_timeout = self.cfg.max_poll_interval;
        let deadline = Instant::now() + rebalance_timeout + self.cfg.request_timeout;
        loop {
            let step: Result<Option<Joined>> = async {
                let conn = self.coordinator().await?;
                let version = conn.version_for::<JoinGroupRequest>()?;
                let member_id = self.lock().member_id.clone();
                let mut req = JoinGroupRequest::default()
                    .with_group_id(GroupId(sb(&self.group_id)))
                    .with_session_timeout_ms(ms(self.cfg.session_timeout))
                    .with_member_id(sb(&member_id))
                    .with_protocol_type(sb("consumer"))
                    .with_protocols(
                        protocols
                            .iter()
                            .map(|(n, md)| {
                                JoinGroupRequestProtocol::default()
                                    .with_name(sb(n))
                                    .with_metadata(md.clone())
                            })
                            .collect(),
                    );
                if version >= 1 {
                    req.rebalance_timeout_ms = ms(rebalance_timeout);
                }
                if version >= 5 {
                    req.group_instance_id = self.cfg.group_instance_id.as_deref().map(sb);
                }
                // The coordinator holds JoinGroup until every member has rejoined.
                let resp = conn
                    .send_timeout(&req, rebalance_timeout + Duration::from_secs(5))
                    .await?;
                match resp.error_code {
                    0 => Ok(Some(Joined {
                        generation: resp.generation_id,
                        member_id: resp.member_id.to_string(),
                        protocol: resp
                            .protocol_name
                            .map(|p| p.to_string())
                            .unwrap_or_default(),
                        leader: resp.leader == resp.member_id,
                        members: resp
                            .members
                            .into_iter()
                            .map(|m| {
                                (
                                    m.member_id.to_string(),
                                    m.group_instance_id.map(|s| s.to_string()),
                                    m.metadata,
                                )
                            })
                            .collect(),
                    })),
                    codes::MEMBER_ID_REQUIRED => {
                        self.lock().member_id = resp.member_id.to_string();
                        Ok(None)
                    }
                    codes::UNKNOWN_MEMBER_ID => {
                        self.lock().member_id.clear();
                        Ok(None)
                    }
                    codes::REBALANCE_IN_PROGRESS => Ok(None),
                    code => {
                        self.check_coordinator(code);
                        Err(Error::from_code(code, Some("JoinGroup"))
                            .unwrap_or(Error::Closed("group")))
                    }
                }
            }
            .await;
            match step {
                Ok(Some(j)) => {
                    let mut m = self.lock();
                    m.member_id = j.member_id.clone();
                    m.generation = j.generation;
                    m.protocol = Some(j.protocol.clone());
                    return Ok(j);
                }
                Ok(None) => {}
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    tracing::debug!(group = %self.group_id, error = %e, "JoinGroup failed; retrying");
                    tokio::time::sleep(self.cfg.retry_backoff).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// SyncGroup; the leader passes every member's assignment. Returns this
    /// member's assignment bytes, or `None` if the group must rejoin.
    pub async fn sync(
        &self,
        joined: &Joined,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<Option<Bytes>> {
        let conn = self.coordinator().await?;
        let version = conn.version_for::<SyncGroupRequest>()?;
        let mut req = SyncGroupRequest::default()
            .with_group_id(GroupId(sb(&self.group_id)))
            .with_generation_id(joined.generation)
            .with_member_id(sb(&joined.member_id))
            .with_assignments(
                assignments
                    .into_iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(sb(&m))
                            .with_assignment(a)
                    })
                    .collect(),
            );
        if version >= 3 {
            req.group_instance_id = self.cfg.group_instance_id.as_deref().map(sb);
        }
        if version >= 5 {
            req.protocol_type = Some(sb("consumer"));
            req.protocol_name = Some(sb(&joined.protocol));
        }
        let resp = conn
            .send_timeout(&req, self.cfg.max_poll_interval + Duration::from_secs(5))
            .await?;
        match resp.error_code {
            0 => {
                let mut m = self.lock();
                m.stable = true;
                m.rejoin_needed = false;
                m.lost = false;
                Ok(Some(resp.assignment))
            }
            codes::REBALANCE_IN_PROGRESS => Ok(None),
            codes::UNKNOWN_MEMBER_ID | codes::ILLEGAL_GENERATION => {
                let mut m = self.lock();
                if resp.error_code == codes::UNKNOWN_MEMBER_ID {
                    m.member_id.clear();
                }
                m.generation = -1;
                Ok(None)
            }
            code => {
                self.check_coordinator(code);
                Err(Error::from_code(code, Some("SyncGroup")).unwrap_or(Error::Closed("group")))
            }
        }
    }

    /// LeaveGroup (skipped for static members, whose partitions should wait
    /// for them to come back within the session timeout).
    pub async fn leave(&self, reason: &str) {
        let member_id = {
            let mut m = self.lock();
            let id = std::mem::take(&mut m.member_id);
            m.generation = -1;
            m.stable = false;
            m.rejoin_needed = true;
            id
        };
        if member_id.is_empty() || self.cfg.group_instance_id.is_some() {
            return;
        }
        let Ok(conn) = self.coordinator().await else {
            return;
        };
        let Ok(version) = conn.version_for::<LeaveGroupRequest>() else {
            return;
        };
        let mut req = LeaveGroupRequest::default().with_group_id(GroupId(sb(&self.group_id)));
        if version >= 3 {
            let mut member = MemberIdentity::default().with_member_id(sb(&member_id));
            if version >= 5 {
                member.reason = Some(sb(reason));
            }
            req.members = vec![member];
        } else {
            req.member_id = sb(&member_id);
        }
        if let Err(e) = conn.send(&req).await {
            tracing::debug!(group = %self.group_id, error = %e, "LeaveGroup failed");
        }
    }
}

fn ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// The heartbeat task: runs until the group is closed.
pub(crate) async fn heartbeat_loop(group: Arc<Group>, shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(group.cfg.heartbeat_interval).await;
        let (stable, closed, last_poll, generation, member_id) = {
            let m = group.lock();
            (
                m.stable,
                m.closed,
                m.last_poll,
                m.generation,
                m.member_id.clone(),
            )
        };
        if closed {
            return;
        }
        if !stable {
            continue;
        }
        if last_poll.elapsed() > group.cfg.max_poll_interval {
            tracing::warn!(
                group = %group.group_id,
                "poll() not called within max.poll.interval.ms; leaving the group"
            );
            group.lock().lost = true;
            group.leave("consumer poll timeout has expired").await;
            shared.data.notify_waiters();
            continue;
        }
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(sb(&group.group_id)))
            .with_generation_id(generation)
            .with_member_id(sb(&member_id));
        let result = async {
            let conn = group.coordinator().await?;
            let mut req = req;
            if conn.version_for::<HeartbeatRequest>()? >= 3 {
                req.group_instance_id = group.cfg.group_instance_id.as_deref().map(sb);
            }
            conn.send(&req).await
        }
        .await;
        let code = match result {
            Ok(r) => r.error_code,
            Err(e) => {
                tracing::debug!(group = %group.group_id, error = %e, "heartbeat failed");
                group.lock().coordinator = None;
                continue;
            }
        };
        let mut m = group.lock();
        if m.generation != generation {
            continue; // a rejoin happened meanwhile
        }
        match code {
            0 => {}
            codes::REBALANCE_IN_PROGRESS => {
                m.rejoin_needed = true;
                drop(m);
                shared.data.notify_waiters();
            }
            codes::UNKNOWN_MEMBER_ID | codes::ILLEGAL_GENERATION | codes::FENCED_INSTANCE_ID => {
                if code != codes::ILLEGAL_GENERATION {
                    m.member_id.clear();
                }
                m.generation = -1;
                m.stable = false;
                m.rejoin_needed = true;
                m.lost = true;
                drop(m);
                shared.data.notify_waiters();
            }
            code if is_coordinator_error(code) => m.coordinator = None,
            code => tracing::debug!(group = %group.group_id, code, "heartbeat error"),
        }
    }
}
