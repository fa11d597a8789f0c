//! Client quota enforcement (Kafka's `ClientQuotaManager` with its
//! `DefaultQuotaCallback`): byte rates of produce and fetch, partition
//! mutations and request handling time (`request_percentage`, Kafka's
//! `ClientRequestQuotaManager`) per user and client id, measured over
//! `quota.window.num` windows of `quota.window.size.seconds`, and the
//! throttle time a client over its quota is given.
//!
//! - [`resolve`]: which quota applies to a (user, client id), in Kafka's
//!   order of eight entities from the most specific down, and the sensor
//!   that measures it (so clients under one user quota share one rate).
//! - [`Rate`]: Kafka's `Rate` over a `SampledStat`: samples of one window
//!   each, the oldest reused, a rate of sum / elapsed time.
//! - [`ClientQuotas`]: the sensors, created on first use and dropped after
//!   an hour without use (Kafka's sensor expiry), swept lazily as values
//!   are recorded: no timer task per client.
//!
//! The handlers record, report the throttle time in their response and ask
//! the connection to throttle ([`crate::transport::ConnectionContext::throttle`]):
//! clients that throttle themselves (KIP-219) get the response at once and
//! the connection is muted for the time; older ones get it late.

use std::collections::HashMap;

use gregor_metadata::quotas::{CLIENT_ID, USER};
use gregor_metadata::quotas::{
    CONSUMER_BYTE_RATE, CONTROLLER_MUTATION_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE,
};
use gregor_metadata::MetadataImage;
use parking_lot::Mutex;

/// A sensor not recorded to for this long is dropped (Kafka's
/// `ClientQuotaManager.InactiveSensorExpirationTimeSeconds`).
const SENSOR_EXPIRY_MS: i64 = 3_600_000;
/// How often at most the sensors are swept for expired ones.
const SWEEP_INTERVAL_MS: i64 = 60_000;

/// What a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaType {
    /// Bytes of produce requests' records (`producer_byte_rate`).
    Produce,
    /// Bytes of fetch responses (`consumer_byte_rate`).
    Fetch,
    /// Partitions created or deleted by CreateTopics, CreatePartitions and
    /// DeleteTopics (`controller_mutation_rate`).
    ControllerMutation,
    /// Time handling requests, in percent of one thread
    /// (`request_percentage`): a second of handling records 100.
    Request,
}

impl QuotaType {
    pub fn key(self) -> &'static str {
        match self {
            QuotaType::Produce => PRODUCER_BYTE_RATE,
            QuotaType::Fetch => CONSUMER_BYTE_RATE,
            QuotaType::ControllerMutation => CONTROLLER_MUTATION_RATE,
            QuotaType::Request => REQUEST_PERCENTAGE,
        }
    }
}

/// Kafka's `ClientRequestQuotaManager.nanosToPercentage`: handling time
/// as the value a `request_percentage` rate records (100 per second of
/// one thread's time, so the rate per second is a percentage of a thread).
pub fn nanos_to_percentage(nanos: u128) -> f64 {
    nanos as f64 * 100.0 / 1e9
}

/// The windows a rate is measured over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    pub samples: u32,
    pub window_ms: i64,
}

impl Default for WindowConfig {
    /// Kafka's defaults: 11 windows of one second.
    fn default() -> Self {
        Self {
            samples: 11,
            window_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    start_ms: i64,
    value: f64,
}

/// Kafka's `Rate` (of a `SampledStat`): values per second over the last
/// `samples` windows.
#[derive(Debug, Clone, Default)]
pub struct Rate {
    samples: Vec<Sample>,
    current: usize,
}

impl Rate {
    pub fn record(&mut self, value: f64, now_ms: i64, config: WindowConfig) {
        if self.samples.is_empty() {
            self.samples.push(Sample {
                start_ms: now_ms,
                value: 0.0,
            });
            self.current = 0;
        }
        if now_ms - self.samples[self.current].start_ms >= config.window_ms {
            // The current window is complete: move to the next one,
            // reusing the oldest once there are `samples` of them.
            self.current = (self.current + 1) % config.samples.max(1) as usize;
            let fresh = Sample {
                start_ms: now_ms,
                value: 0.0,
            };
            if self.current >= self.samples.len() {
                self.samples.push(fresh);
                self.current = self.samples.len() - 1;
            } else {
                self.samples[self.current] = fresh;
            }
        }
        self.samples[self.current].value += value;
    }

    /// Resets windows older than the whole measured span (Kafka's
    /// `purgeObsoleteSamples`).
    fn purge(&mut self, now_ms: i64, config: WindowConfig) {
        let expire = config.samples as i64 * config.window_ms;
        for s in &mut self.samples {
            if now_ms - s.start_ms >= expire {
                *s = Sample {
                    start_ms: now_ms,
                    value: 0.0,
                };
            }
        }
    }

    /// The span the rate divides by (Kafka's `Rate.windowSize`): from the
    /// oldest window's start to now, but at least `samples - 1` full
    /// windows, so a new sensor does not see a burst as a huge rate.
    pub fn window_size_ms(&mut self, now_ms: i64, config: WindowConfig) -> i64 {
        self.purge(now_ms, config);
        let oldest = self
            .samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms);
        let mut elapsed = now_ms - oldest;
        let full = elapsed / config.window_ms;
        let min_full = config.samples as i64 - 1;
        if full < min_full {
            elapsed += (min_full - full) * config.window_ms;
        }
        elapsed
    }

    /// Values per second.
    pub fn measure(&mut self, now_ms: i64, config: WindowConfig) -> f64 {
        let size = self.window_size_ms(now_ms, config);
        let sum: f64 = self.samples.iter().map(|s| s.value).sum();
        if size <= 0 {
            return 0.0;
        }
        sum / (size as f64 / 1000.0)
    }
}

/// Kafka's `QuotaUtils.throttleTime`: how long a client observed at
/// `observed` per second must wait to bring its rate back to `bound`.
pub fn throttle_time_ms(observed: f64, bound: f64, window_ms: i64) -> i64 {
    if bound <= 0.0 {
        // A zero quota: as long as the whole measured span.
        return window_ms;
    }
    let difference = observed - bound;
    (difference / bound * window_ms as f64).round() as i64
}

/// Kafka's `QuotaUtils.boundedThrottleTime`: [`throttle_time_ms`] capped
/// at `max_ms` (the request and connection quotas cap it at one window,
/// `quota.window.size.seconds`).
pub fn bounded_throttle_time_ms(observed: f64, bound: f64, window_ms: i64, max_ms: i64) -> i64 {
    throttle_time_ms(observed, bound, window_ms).min(max_ms)
}

/// The sensor a quota is measured on: the user and client id of the
/// entity that matched, with the client's actual names ("" for a part the
/// entity does not have), as Kafka's quota metric tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SensorKey {
    pub user: String,
    pub client_id: String,
}

/// The quota `key` that applies to `user` (the principal's name) and
/// `client_id`, and the sensor it is measured on, in Kafka's order:
/// user+client-id, user+default client, user, default user+client-id,
/// default user+default client, default user, client-id, default client.
pub fn resolve(
    image: &MetadataImage,
    user: &str,
    client_id: &str,
    key: &str,
) -> Option<(f64, SensorKey)> {
    if !image.has_client_quotas() {
        return None;
    }
    let u = Some(user.to_string());
    let c = Some(client_id.to_string());
    // (user part, client part): None = not in the entity, Some(None) = default.
    type Part<'a> = Option<&'a Option<String>>;
    let order: [(Part, Part); 8] = [
        (Some(&u), Some(&c)),
        (Some(&u), Some(&None)),
        (Some(&u), None),
        (Some(&None), Some(&c)),
        (Some(&None), Some(&None)),
        (Some(&None), None),
        (None, Some(&c)),
        (None, Some(&None)),
    ];
    for (user_part, client_part) in order {
        let mut entity = gregor_metadata::quotas::QuotaEntity::new();
        if let Some(name) = user_part {
            entity.insert(USER.to_string(), name.clone());
        }
        if let Some(name) = client_part {
            entity.insert(CLIENT_ID.to_string(), name.clone());
        }
        if let Some(value) = image.client_quotas(&entity).and_then(|q| q.get(key)) {
            let sensor = SensorKey {
                user: if user_part.is_some() {
                    user.to_string()
                } else {
                    String::new()
                },
                client_id: if client_part.is_some() {
                    client_id.to_string()
                } else {
                    String::new()
                },
            };
            return Some((value.0, sensor));
        }
    }
    None
}

#[derive(Debug)]
struct Sensor {
    rate: Rate,
    last_record_ms: i64,
}

#[derive(Debug, Default)]
struct Sensors {
    by_key: HashMap<(QuotaType, SensorKey), Sensor>,
    last_sweep_ms: i64,
}

/// The broker's client quota sensors.
#[derive(Debug, Default)]
pub struct ClientQuotas {
    config: WindowConfig,
    sensors: Mutex<Sensors>,
}

impl ClientQuotas {
    pub fn new(config: WindowConfig) -> Self {
        Self {
            config,
            sensors: Mutex::default(),
        }
    }

    /// Records `value` for the quota of `kind` that applies to
    /// (`user`, `client_id`) and returns the throttle time in ms (0 under
    /// the quota or without one). The value is recorded even when over.
    pub fn record(
        &self,
        image: &MetadataImage,
        kind: QuotaType,
        user: &str,
        client_id: &str,
        value: f64,
        now_ms: i64,
    ) -> i32 {
        let Some((bound, key)) = resolve(image, user, client_id, kind.key()) else {
            return 0;
        };
        let mut sensors = self.sensors.lock();
        if now_ms - sensors.last_sweep_ms >= SWEEP_INTERVAL_MS {
            sensors
                .by_key
                .retain(|_, s| now_ms - s.last_record_ms < SENSOR_EXPIRY_MS);
            sensors.last_sweep_ms = now_ms;
        }
        let sensor = sensors.by_key.entry((kind, key)).or_insert(Sensor {
            rate: Rate::default(),
            last_record_ms: now_ms,
        });
        sensor.last_record_ms = now_ms;
        sensor.rate.record(value, now_ms, self.config);
        let observed = sensor.rate.measure(now_ms, self.config);
        if observed <= bound {
            return 0;
        }
        let window = sensor.rate.window_size_ms(now_ms, self.config);
        let ms = match kind {
            // Kafka's ClientRequestQuotaManager caps its throttle at one window.
            QuotaType::Request => {
                bounded_throttle_time_ms(observed, bound, window, self.config.window_ms)
            }
            _ => throttle_time_ms(observed, bound, window),
        };
        ms.clamp(0, i32::MAX as i64) as i32
    }

    /// The throttle time the client's rate of `kind` calls for now, without
    /// recording anything (0 under the quota, or without one): a strict
    /// controller mutation quota refuses a request while it is over.
    pub fn throttle_now(
        &self,
        image: &MetadataImage,
        kind: QuotaType,
        user: &str,
        client_id: &str,
        now_ms: i64,
    ) -> i32 {
        let Some((bound, key)) = resolve(image, user, client_id, kind.key()) else {
            return 0;
        };
        let mut sensors = self.sensors.lock();
        let Some(sensor) = sensors.by_key.get_mut(&(kind, key)) else {
            return 0;
        };
        let observed = sensor.rate.measure(now_ms, self.config);
        if observed <= bound {
            return 0;
        }
        let window = sensor.rate.window_size_ms(now_ms, self.config);
        throttle_time_ms(observed, bound, window).clamp(0, i32::MAX as i64) as i32
    }

    /// Takes `value` back off the rate it was recorded to (Kafka's
    /// `unrecordQuotaSensor`), if the sensor still exists.
    pub fn unrecord(
        &self,
        image: &MetadataImage,
        kind: QuotaType,
        user: &str,
        client_id: &str,
        value: f64,
        now_ms: i64,
    ) {
        let Some((_, key)) = resolve(image, user, client_id, kind.key()) else {
            return;
        };
        if let Some(sensor) = self.sensors.lock().by_key.get_mut(&(kind, key)) {
            sensor.rate.record(-value, now_ms, self.config);
        }
    }

    /// How many sensors exist (tests).
    pub fn sensor_count(&self) -> usize {
        self.sensors.lock().by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_metadata::quotas::{alter_entity, QuotaOp};
    use gregor_metadata::QuotaEntityPart;

    const CFG: WindowConfig = WindowConfig {
        samples: 11,
        window_ms: 1000,
    };

    #[test]
    fn rate_over_windows() {
        let mut r = Rate::default();
        r.record(1000.0, 0, CFG);
        // A new rate divides by at least ten windows.
        assert_eq!(r.window_size_ms(0, CFG), 10_000);
        assert_eq!(r.measure(0, CFG), 100.0);
        r.record(1000.0, 5_000, CFG);
        assert_eq!(r.measure(5_000, CFG), 200.0);
        // Twenty seconds on, both windows have expired.
        assert_eq!(r.measure(25_000, CFG), 0.0);
        // Eleven windows are reused in a ring.
        let mut r = Rate::default();
        for s in 0..30 {
            r.record(100.0, s * 1000, CFG);
        }
        assert_eq!(r.samples.len(), 11);
        assert_eq!(r.window_size_ms(29_000, CFG), 10_000);
        assert_eq!(r.measure(29_000, CFG), 110.0);
    }

    #[test]
    fn throttle_time_as_kafka() {
        // 50% over a quota of 100/s measured over 10 s: 5 s.
        assert_eq!(throttle_time_ms(150.0, 100.0, 10_000), 5_000);
        assert_eq!(throttle_time_ms(100.4, 100.0, 1_000), 4);
    }

    #[test]
    fn request_time_as_percent_of_a_thread_with_a_capped_throttle() {
        // A second of handling is 100 (percent of one thread for a second).
        assert_eq!(nanos_to_percentage(1_000_000_000), 100.0);
        assert_eq!(nanos_to_percentage(5_000_000), 0.5);
        let mut image = MetadataImage::default();
        let parts = [QuotaEntityPart {
            entity_type: CLIENT_ID.into(),
            entity_name: Some("c".into()),
        }];
        let op = QuotaOp {
            key: REQUEST_PERCENTAGE.into(),
            value: Some(1.0),
        };
        for r in alter_entity(&image, &parts, &[op]).unwrap() {
            image.apply(&r);
        }
        let q = ClientQuotas::new(CFG);
        // 1% of a thread over a 10 s span allows 10 (100 ms of handling).
        assert_eq!(q.record(&image, QuotaType::Request, "u", "c", 10.0, 0), 0);
        // 15 is 50% over: 5 s by Kafka's formula, capped at one window.
        assert_eq!(
            q.record(&image, QuotaType::Request, "u", "c", 5.0, 0),
            1_000
        );
        // Slightly over: the formula's own time, under the cap.
        let q = ClientQuotas::new(CFG);
        assert_eq!(q.record(&image, QuotaType::Request, "u", "c", 10.2, 0), 200);
        // Other clients have no request quota.
        assert_eq!(q.record(&image, QuotaType::Request, "u", "d", 1e9, 0), 0);
    }

    /// An entity's parts (type, name or default) and its producer quota.
    type Entry<'a> = (&'a [(&'a str, Option<&'a str>)], f64);

    fn image_with(entries: &[Entry]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (parts, value) in entries {
            let parts: Vec<QuotaEntityPart> = parts
                .iter()
                .map(|(t, n)| QuotaEntityPart {
                    entity_type: t.to_string(),
                    entity_name: n.map(Into::into),
                })
                .collect();
            let op = QuotaOp {
                key: PRODUCER_BYTE_RATE.into(),
                value: Some(*value),
            };
            for r in alter_entity(&image, &parts, &[op]).unwrap() {
                image.apply(&r);
            }
        }
        image
    }

    #[test]
    fn resolution_order() {
        let all: Vec<Entry> = vec![
            (&[(USER, Some("u")), (CLIENT_ID, Some("c"))], 1.0),
            (&[(USER, Some("u")), (CLIENT_ID, None)], 2.0),
            (&[(USER, Some("u"))], 3.0),
            (&[(USER, None), (CLIENT_ID, Some("c"))], 4.0),
            (&[(USER, None), (CLIENT_ID, None)], 5.0),
            (&[(USER, None)], 6.0),
            (&[(CLIENT_ID, Some("c"))], 7.0),
            (&[(CLIENT_ID, None)], 8.0),
        ];
        // With the first n entities removed, entity n+1 applies.
        for n in 0..all.len() {
            let image = image_with(&all[n..]);
            let (q, _) = resolve(&image, "u", "c", PRODUCER_BYTE_RATE).unwrap();
            assert_eq!(q, (n + 1) as f64, "with entities {n}.. set");
        }
        let image = image_with(&all[6..]);
        // Another client id falls to the default client id, on its own sensor.
        let (q, key) = resolve(&image, "u", "other", PRODUCER_BYTE_RATE).unwrap();
        assert_eq!(q, 8.0);
        assert_eq!(
            key,
            SensorKey {
                user: String::new(),
                client_id: "other".into()
            }
        );
        // A user quota is shared by the user's client ids.
        let image = image_with(&all[2..3]);
        let (_, a) = resolve(&image, "u", "c1", PRODUCER_BYTE_RATE).unwrap();
        let (_, b) = resolve(&image, "u", "c2", PRODUCER_BYTE_RATE).unwrap();
        assert_eq!(a, b);
        assert!(resolve(&image, "v", "c", PRODUCER_BYTE_RATE).is_none());
        assert!(resolve(&image, "u", "c", CONSUMER_BYTE_RATE).is_none());
    }

    #[test]
    fn record_throttles_and_sensors_expire() {
        let image = image_with(&[
            (&[(CLIENT_ID, Some("c"))], 100.0),
            (&[(CLIENT_ID, Some("e"))], 1e12),
        ]);
        let q = ClientQuotas::new(CFG);
        // 500 bytes over a 10 s minimum span: 50/s, under 100/s.
        assert_eq!(q.record(&image, QuotaType::Produce, "u", "c", 500.0, 0), 0);
        // 2000 bytes: 200/s, twice the quota: throttled one span (10 s).
        assert_eq!(
            q.record(&image, QuotaType::Produce, "u", "c", 1500.0, 0),
            10_000
        );
        assert_eq!(
            q.throttle_now(&image, QuotaType::Produce, "u", "c", 0),
            10_000
        );
        assert_eq!(q.throttle_now(&image, QuotaType::Fetch, "u", "c", 0), 0);
        // Unquoted clients are not measured at all.
        assert_eq!(q.record(&image, QuotaType::Produce, "u", "d", 1e9, 0), 0);
        assert_eq!(q.sensor_count(), 1);
        // After an hour idle, c's sensor goes on the next sweep.
        let later = SENSOR_EXPIRY_MS + 1;
        assert_eq!(
            q.record(&image, QuotaType::Produce, "u", "e", 1.0, later),
            0
        );
        assert_eq!(q.sensor_count(), 1);
        assert_eq!(
            q.record(&image, QuotaType::Produce, "u", "c", 1.0, later),
            0
        );
        assert_eq!(q.sensor_count(), 2);
    }
}
