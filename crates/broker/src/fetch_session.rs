//! Incremental fetch sessions (KIP-227), as Kafka's `FetchManager` keeps them.
//!
//! A fetcher of many partitions opens a session with a full fetch at epoch 0;
//! the answer names the session. Its next fetches (epoch 1, 2, ...) list only
//! the partitions whose fetch position or limits changed (and the ones to
//! forget); the broker fetches every partition of the session from what it
//! cached, and answers only the partitions with something new: records, a
//! moved high watermark or log start offset, an error, a preferred read
//! replica or a diverging epoch. Partitions that returned records move to the
//! end of the session, so a response full at `max_bytes` does not starve the
//! partitions after them.
//!
//! - Epoch -1 ([`FINAL_EPOCH`]): a full fetch without a session (closing the
//!   one named, if any). Epoch 0: close the named session and open a new one.
//! - An unknown session id is FETCH_SESSION_ID_NOT_FOUND, a wrong epoch
//!   INVALID_FETCH_SESSION_EPOCH, a session opened with topic ids (v13+)
//!   used by a request without them (or the reverse)
//!   FETCH_SESSION_TOPIC_ID_ERROR: the fetcher then starts over with a full
//!   fetch.
//! - The cache holds `max.incremental.fetch.session.cache.slots` sessions. A
//!   new one takes the slot of a session unused for
//!   [`EVICTION_AFTER_MS`], else of the least valuable one (a consumer's
//!   before a follower's, then the fewest partitions) when it is worth more;
//!   else it is not cached and the fetcher gets session id 0 (full fetches).

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use parking_lot::Mutex;
use uuid::Uuid;

/// The session epoch of a full fetch that opens no session.
pub const FINAL_EPOCH: i32 = -1;
/// The session epoch of a full fetch that opens a session.
pub const INITIAL_EPOCH: i32 = 0;
/// A session unused this long may lose its slot to a new one (Kafka's
/// `min.incremental.fetch.session.eviction.ms` default, not a config there).
pub const EVICTION_AFTER_MS: i64 = 120_000;

/// Kafka's `FetchMetadata.nextEpoch`: 1, 2, ... i32::MAX, then 1 again.
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        FINAL_EPOCH
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// One partition of a session: the fetcher's last request parameters and
/// what the last response told it.
#[derive(Debug, Clone)]
struct Cached {
    topic: TopicName,
    topic_id: Uuid,
    partition: i32,
    max_bytes: i32,
    fetch_offset: i64,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
    fetcher_log_start_offset: i64,
    replica_directory_id: Uuid,
    high_watermark: i64,
    local_log_start_offset: i64,
}

impl Cached {
    fn from_request(topic: &FetchTopic, p: &FetchPartition) -> Self {
        Self {
            topic: topic.topic.clone(),
            topic_id: topic.topic_id,
            partition: p.partition,
            max_bytes: p.partition_max_bytes,
            fetch_offset: p.fetch_offset,
            current_leader_epoch: p.current_leader_epoch,
            last_fetched_epoch: p.last_fetched_epoch,
            fetcher_log_start_offset: p.log_start_offset,
            replica_directory_id: p.replica_directory_id,
            high_watermark: -1,
            local_log_start_offset: -1,
        }
    }

    fn update_request(&mut self, p: &FetchPartition) {
        self.max_bytes = p.partition_max_bytes;
        self.fetch_offset = p.fetch_offset;
        self.current_leader_epoch = p.current_leader_epoch;
        self.last_fetched_epoch = p.last_fetched_epoch;
        self.fetcher_log_start_offset = p.log_start_offset;
        self.replica_directory_id = p.replica_directory_id;
    }

    fn request(&self) -> FetchPartition {
        let mut p = FetchPartition::default();
        p.partition = self.partition;
        p.current_leader_epoch = self.current_leader_epoch;
        p.fetch_offset = self.fetch_offset;
        p.last_fetched_epoch = self.last_fetched_epoch;
        p.log_start_offset = self.fetcher_log_start_offset;
        p.partition_max_bytes = self.max_bytes;
        p.replica_directory_id = self.replica_directory_id;
        p
    }

    /// Kafka's `maybeUpdateResponseData`: whether the partition must be in
    /// an incremental response, remembering what the fetcher is told.
    fn must_respond(&mut self, pd: &PartitionData) -> bool {
        let mut must = pd.records.as_ref().is_some_and(|r| !r.is_empty());
        if self.high_watermark != pd.high_watermark {
            must = true;
            self.high_watermark = pd.high_watermark;
        }
        if self.local_log_start_offset != pd.log_start_offset {
            must = true;
            self.local_log_start_offset = pd.log_start_offset;
        }
        if pd.preferred_read_replica.0 >= 0 || pd.diverging_epoch.epoch >= 0 {
            must = true;
        }
        if pd.error_code != 0 {
            // Re-sent once the error clears.
            self.high_watermark = -1;
            must = true;
        }
        must
    }
}

/// A partition's identity in a session: by topic id when the session uses
/// ids (v13+), else by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Id(Uuid, i32),
    Name(TopicName, i32),
}

#[derive(Debug)]
pub struct Session {
    id: i32,
    privileged: bool,
    uses_topic_ids: bool,
    /// The epoch the next request must carry.
    epoch: i32,
    last_used_ms: i64,
    /// In fetch order.
    partitions: Vec<Cached>,
}

impl Session {
    fn key(&self, topic: &TopicName, topic_id: Uuid, partition: i32) -> Key {
        if self.uses_topic_ids {
            Key::Id(topic_id, partition)
        } else {
            Key::Name(topic.clone(), partition)
        }
    }

    fn index(&self) -> HashMap<Key, usize> {
        self.partitions
            .iter()
            .enumerate()
            .map(|(i, c)| (self.key(&c.topic, c.topic_id, c.partition), i))
            .collect()
    }

    /// Applies an incremental request: new partitions added at the end,
    /// known ones updated, forgotten ones removed.
    fn update(&mut self, req: &FetchRequest) {
        let mut index = self.index();
        for t in &req.topics {
            for p in &t.partitions {
                let key = self.key(&t.topic, t.topic_id, p.partition);
                match index.get(&key) {
                    Some(&i) => self.partitions[i].update_request(p),
                    None => {
                        index.insert(key, self.partitions.len());
                        self.partitions.push(Cached::from_request(t, p));
                    }
                }
            }
        }
        if req
            .forgotten_topics_data
            .iter()
            .any(|t| !t.partitions.is_empty())
        {
            let mut forget = std::collections::HashSet::new();
            for t in &req.forgotten_topics_data {
                for &p in &t.partitions {
                    forget.insert(self.key(&t.topic, t.topic_id, p));
                }
            }
            let uses_ids = self.uses_topic_ids;
            self.partitions.retain(|c| {
                let key = if uses_ids {
                    Key::Id(c.topic_id, c.partition)
                } else {
                    Key::Name(c.topic.clone(), c.partition)
                };
                !forget.contains(&key)
            });
        }
    }

    /// The session's partitions as request topics (consecutive partitions
    /// of one topic share an entry).
    fn request_topics(&self) -> Vec<FetchTopic> {
        let mut topics: Vec<FetchTopic> = Vec::new();
        for c in &self.partitions {
            match topics.last_mut() {
                Some(t) if t.topic == c.topic && t.topic_id == c.topic_id => {
                    t.partitions.push(c.request())
                }
                _ => {
                    let mut t = FetchTopic::default();
                    t.topic = c.topic.clone();
                    t.topic_id = c.topic_id;
                    t.partitions.push(c.request());
                    topics.push(t);
                }
            }
        }
        topics
    }
}

/// How one fetch request relates to the sessions.
pub enum FetchContext {
    /// Answer with this error and nothing else.
    Error(ResponseError),
    /// A full fetch that opens no session.
    Sessionless,
    /// A full fetch that opens a session if the cache has room.
    Full,
    /// An incremental fetch of an existing session, at the epoch it carried.
    Incremental(Arc<Mutex<Session>>, i32),
}

/// The sessions of one broker.
pub struct FetchSessionCache {
    slots: usize,
    sessions: Mutex<HashMap<i32, Arc<Mutex<Session>>>>,
}

impl FetchSessionCache {
    /// `max.incremental.fetch.session.cache.slots` (0: no sessions).
    pub fn new(slots: usize) -> Self {
        Self {
            slots,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Kafka's `FetchManager.newContext`. `api_version` below 7 has no
    /// sessions: every fetch is sessionless.
    pub fn context(&self, api_version: i16, req: &FetchRequest, now_ms: i64) -> FetchContext {
        if api_version < 7 {
            return FetchContext::Sessionless;
        }
        let (id, epoch) = (req.session_id, req.session_epoch);
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            if id != 0 {
                self.sessions.lock().remove(&id);
            }
            return if epoch == FINAL_EPOCH || self.slots == 0 {
                FetchContext::Sessionless
            } else {
                FetchContext::Full
            };
        }
        let mut sessions = self.sessions.lock();
        let Some(session) = sessions.get(&id).cloned() else {
            return FetchContext::Error(ResponseError::FetchSessionIdNotFound);
        };
        let mut s = session.lock();
        if s.epoch != epoch {
            return FetchContext::Error(ResponseError::InvalidFetchSessionEpoch);
        }
        if s.uses_topic_ids != (api_version >= 13) {
            return FetchContext::Error(ResponseError::FetchSessionTopicIdError);
        }
        s.update(req);
        if s.partitions.is_empty() {
            drop(s);
            sessions.remove(&id);
            return FetchContext::Sessionless;
        }
        s.last_used_ms = now_ms;
        s.epoch = next_epoch(s.epoch);
        drop(s);
        FetchContext::Incremental(session, epoch)
    }

    /// The request to read for an incremental fetch: every partition of the
    /// session with its cached parameters.
    pub fn session_request(session: &Mutex<Session>, req: &FetchRequest) -> FetchRequest {
        let mut eff = req.clone();
        eff.topics = session.lock().request_topics();
        eff.forgotten_topics_data.clear();
        eff
    }

    /// Trims an incremental fetch's full answer to what changed, rotating the
    /// partitions that returned records to the end of the session.
    pub fn finish_incremental(
        session: &Mutex<Session>,
        req_epoch: i32,
        mut resp: FetchResponse,
    ) -> FetchResponse {
        let mut s = session.lock();
        resp.session_id = s.id;
        if s.epoch != next_epoch(req_epoch) {
            // A duplicate request moved the session on meanwhile.
            resp.error_code = ResponseError::InvalidFetchSessionEpoch.code();
            resp.responses.clear();
            return resp;
        }
        let index = s.index();
        let mut had_records = Vec::new();
        for t in &mut resp.responses {
            let (topic, topic_id) = (t.topic.clone(), t.topic_id);
            t.partitions.retain(|pd| {
                let key = s.key(&topic, topic_id, pd.partition_index);
                let Some(&i) = index.get(&key) else {
                    return false;
                };
                let must = s.partitions[i].must_respond(pd);
                if must && pd.records.as_ref().is_some_and(|r| !r.is_empty()) {
                    had_records.push(i);
                }
                must
            });
        }
        resp.responses.retain(|t| !t.partitions.is_empty());
        if !had_records.is_empty() {
            let moved: std::collections::HashSet<usize> = had_records.iter().copied().collect();
            let mut keep = Vec::with_capacity(s.partitions.len());
            let mut tail = Vec::with_capacity(had_records.len());
            for (i, c) in std::mem::take(&mut s.partitions).into_iter().enumerate() {
                if moved.contains(&i) {
                    tail.push(c);
                } else {
                    keep.push(c);
                }
            }
            keep.extend(tail);
            s.partitions = keep;
        }
        resp
    }

    /// After a full fetch at epoch 0: caches a session of the partitions
    /// answered, if there is a slot, and names it in the response.
    pub fn finish_full(
        &self,
        api_version: i16,
        req: &FetchRequest,
        privileged: bool,
        resp: &mut FetchResponse,
        now_ms: i64,
    ) {
        let mut session = Session {
            id: 0,
            privileged,
            uses_topic_ids: api_version >= 13,
            epoch: 1,
            last_used_ms: now_ms,
            partitions: Vec::new(),
        };
        for t in &req.topics {
            for p in &t.partitions {
                session.partitions.push(Cached::from_request(t, p));
            }
        }
        // What the response told the fetcher, so the next incremental fetch
        // answers only changes.
        let index = session.index();
        for t in &resp.responses {
            for pd in &t.partitions {
                let key = session.key(&t.topic, t.topic_id, pd.partition_index);
                if let Some(&i) = index.get(&key) {
                    session.partitions[i].must_respond(pd);
                }
            }
        }
        let size = session.partitions.len();
        let mut sessions = self.sessions.lock();
        if sessions.len() >= self.slots && !Self::evict(&mut sessions, privileged, size, now_ms) {
            resp.session_id = 0;
            return;
        }
        let mut id;
        loop {
            id = rand::random::<i32>() & i32::MAX;
            if id != 0 && !sessions.contains_key(&id) {
                break;
            }
        }
        session.id = id;
        sessions.insert(id, Arc::new(Mutex::new(session)));
        resp.session_id = id;
    }

    /// Frees a slot for a new session of `size` partitions: a stale session's,
    /// else the least valuable one's if the new session is worth more.
    fn evict(
        sessions: &mut HashMap<i32, Arc<Mutex<Session>>>,
        privileged: bool,
        size: usize,
        now_ms: i64,
    ) -> bool {
        let mut stale: Option<(i64, i32)> = None;
        let mut least: Option<((bool, usize), i32)> = None;
        for (&id, s) in sessions.iter() {
            let s = s.lock();
            if now_ms - s.last_used_ms >= EVICTION_AFTER_MS
                && stale.is_none_or(|(t, _)| s.last_used_ms < t)
            {
                stale = Some((s.last_used_ms, id));
            }
            let value = (s.privileged, s.partitions.len());
            if least.is_none_or(|(v, _)| value < v) {
                least = Some((value, id));
            }
        }
        let victim = match (stale, least) {
            (Some((_, id)), _) => Some(id),
            (None, Some((value, id))) if (privileged, size) > value => Some(id),
            _ => None,
        };
        match victim {
            Some(id) => {
                sessions.remove(&id);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::fetch_request::ForgottenTopic;
    use kafka_protocol::messages::fetch_response::FetchableTopicResponse;

    fn topic(name: &str, parts: &[(i32, i64)]) -> FetchTopic {
        let mut t = FetchTopic::default();
        t.topic = TopicName(name.to_string().into());
        for &(p, off) in parts {
            let mut fp = FetchPartition::default();
            fp.partition = p;
            fp.fetch_offset = off;
            fp.partition_max_bytes = 1 << 20;
            t.partitions.push(fp);
        }
        t
    }

    fn request(id: i32, epoch: i32, topics: Vec<FetchTopic>) -> FetchRequest {
        let mut r = FetchRequest::default();
        r.session_id = id;
        r.session_epoch = epoch;
        r.topics = topics;
        r
    }

    /// A full answer for `req`: `hw` for every partition, records for those named.
    fn answer(req: &FetchRequest, hw: i64, with_records: &[i32]) -> FetchResponse {
        let mut resp = FetchResponse::default();
        for t in &req.topics {
            let mut rt = FetchableTopicResponse::default();
            rt.topic = t.topic.clone();
            for p in &t.partitions {
                let mut pd = PartitionData::default();
                pd.partition_index = p.partition;
                pd.high_watermark = hw;
                pd.log_start_offset = 0;
                pd.records = Some(if with_records.contains(&p.partition) {
                    Bytes::from_static(b"x")
                } else {
                    Bytes::new()
                });
                rt.partitions.push(pd);
            }
            resp.responses.push(rt);
        }
        resp
    }

    fn partitions(resp: &FetchResponse) -> Vec<i32> {
        resp.responses
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.partition_index))
            .collect()
    }

    #[test]
    fn incremental_fetches_answer_only_changes_and_rotate() {
        let cache = FetchSessionCache::new(10);
        let full = request(0, 0, vec![topic("t", &[(0, 0), (1, 0), (2, 0)])]);
        assert!(matches!(cache.context(12, &full, 0), FetchContext::Full));
        let mut resp = answer(&full, 5, &[0, 1, 2]);
        cache.finish_full(12, &full, false, &mut resp, 0);
        let id = resp.session_id;
        assert!(id > 0);

        // Epoch 1 moves partition 1 on; nothing changed anywhere.
        let inc = request(id, 1, vec![topic("t", &[(1, 5)])]);
        let FetchContext::Incremental(s, e) = cache.context(12, &inc, 1) else {
            panic!("incremental")
        };
        let eff = FetchSessionCache::session_request(&s, &inc);
        assert_eq!(partitions_of(&eff), vec![0, 1, 2]);
        assert_eq!(eff.topics[0].partitions[1].fetch_offset, 5);
        let out = FetchSessionCache::finish_incremental(&s, e, answer(&eff, 5, &[]));
        assert!(out.responses.is_empty());
        assert_eq!(out.session_id, id);

        // Epoch 2: partition 0 has records; it is answered and rotated last.
        let inc = request(id, 2, vec![]);
        let FetchContext::Incremental(s, e) = cache.context(12, &inc, 2) else {
            panic!("incremental")
        };
        let eff = FetchSessionCache::session_request(&s, &inc);
        let out = FetchSessionCache::finish_incremental(&s, e, answer(&eff, 5, &[0]));
        assert_eq!(partitions(&out), vec![0]);
        let inc = request(id, 3, vec![]);
        let FetchContext::Incremental(s, e) = cache.context(12, &inc, 3) else {
            panic!("incremental")
        };
        let eff = FetchSessionCache::session_request(&s, &inc);
        assert_eq!(partitions_of(&eff), vec![1, 2, 0]);
        // A high-watermark move is answered for every partition.
        let out = FetchSessionCache::finish_incremental(&s, e, answer(&eff, 6, &[]));
        assert_eq!(partitions(&out), vec![1, 2, 0]);

        // Forgetting every partition closes the session.
        let mut inc = request(id, 4, vec![]);
        let mut f = ForgottenTopic::default();
        f.topic = TopicName("t".to_string().into());
        f.partitions = vec![0, 1, 2];
        inc.forgotten_topics_data.push(f);
        assert!(matches!(
            cache.context(12, &inc, 4),
            FetchContext::Sessionless
        ));
        assert!(cache.is_empty());
    }

    fn partitions_of(req: &FetchRequest) -> Vec<i32> {
        req.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.partition))
            .collect()
    }

    #[test]
    fn session_errors() {
        let cache = FetchSessionCache::new(10);
        assert!(matches!(
            cache.context(12, &request(42, 1, vec![]), 0),
            FetchContext::Error(ResponseError::FetchSessionIdNotFound)
        ));
        let full = request(0, 0, vec![topic("t", &[(0, 0)])]);
        let mut resp = answer(&full, 0, &[]);
        cache.finish_full(12, &full, false, &mut resp, 0);
        let id = resp.session_id;
        assert!(matches!(
            cache.context(12, &request(id, 2, vec![]), 0),
            FetchContext::Error(ResponseError::InvalidFetchSessionEpoch)
        ));
        assert!(matches!(
            cache.context(13, &request(id, 1, vec![]), 0),
            FetchContext::Error(ResponseError::FetchSessionTopicIdError)
        ));
        // A full fetch naming the session closes it.
        assert!(matches!(
            cache.context(12, &request(id, FINAL_EPOCH, vec![]), 0),
            FetchContext::Sessionless
        ));
        assert!(cache.is_empty());
        // Before v7 there are no sessions.
        assert!(matches!(
            cache.context(6, &request(0, 0, vec![]), 0),
            FetchContext::Sessionless
        ));
    }

    #[test]
    fn a_full_cache_evicts_stale_or_smaller_sessions_only() {
        let cache = FetchSessionCache::new(1);
        let big = request(0, 0, vec![topic("t", &[(0, 0), (1, 0)])]);
        let small = request(0, 0, vec![topic("t", &[(0, 0)])]);
        let mut r1 = answer(&big, 0, &[]);
        cache.finish_full(12, &big, false, &mut r1, 0);
        assert!(r1.session_id > 0);
        // Smaller and not stale: no slot.
        let mut r2 = answer(&small, 0, &[]);
        cache.finish_full(12, &small, false, &mut r2, 1000);
        assert_eq!(r2.session_id, 0);
        // A follower's session is worth more.
        let mut r3 = answer(&small, 0, &[]);
        cache.finish_full(12, &small, true, &mut r3, 1000);
        assert!(r3.session_id > 0);
        assert_eq!(cache.len(), 1);
        // Once stale, any new session takes the slot.
        let mut r4 = answer(&small, 0, &[]);
        cache.finish_full(12, &small, false, &mut r4, 1000 + EVICTION_AFTER_MS);
        assert!(r4.session_id > 0 && r4.session_id != r3.session_id);
        // No slots: no sessions.
        let none = FetchSessionCache::new(0);
        assert!(matches!(
            none.context(12, &small, 0),
            FetchContext::Sessionless
        ));
    }

    #[test]
    fn epochs_wrap_to_one() {
        assert_eq!(next_epoch(1), 2);
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(-1), -1);
    }
}
