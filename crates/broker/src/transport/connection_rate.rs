//! Connection creation rate limits (KIP-612; Kafka's `ConnectionQuotas` in
//! its `SocketServer`), measured like the client quotas
//! ([`crate::quota::Rate`] over `quota.window.num` windows of
//! `quota.window.size.seconds`), each throttle capped at one window:
//!
//! - `max.connection.creation.rate` for the broker and
//!   `listener.name.<listener>.max.connection.creation.rate` per listener:
//!   a connection over either is accepted late, and the listener accepts
//!   nothing more until then (Kafka's acceptor waits). The inter-broker
//!   listener is held to its own limit only, not the broker's (when there
//!   are other listeners), so clients cannot slow replication down.
//! - `connection_creation_rate` of an `ip` client quota entity (the IP's
//!   own, else the default IP's): a connection over it is not served; its
//!   socket is held for the throttle time, then closed (Kafka's
//!   `DelayedCloseSocket`, so the client does not reconnect at once), and
//!   it is taken back off every rate, as it was never accepted.
//!
//! [`ConnectionRates::admit`] takes the time and returns the decision; the
//! accept loop (`server.rs`) does the waiting and closing.

use std::collections::HashMap;
use std::net::IpAddr;

use gregor_metadata::quotas::{QuotaEntity, CONNECTION_CREATION_RATE, IP};
use gregor_metadata::MetadataImage;
use parking_lot::Mutex;

use crate::quota::{bounded_throttle_time_ms, Rate, WindowConfig};

/// An IP's sensor not recorded to for this long is dropped (Kafka's
/// inactive sensor expiry, an hour).
const IP_SENSOR_EXPIRY_MS: i64 = 3_600_000;
const SWEEP_INTERVAL_MS: i64 = 60_000;

/// What to do with a connection just accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Serve it, after `delay_ms` (0: at once); the listener accepts
    /// nothing else before then.
    Accept { delay_ms: i64 },
    /// Its IP is over its `connection_creation_rate`: close it after
    /// `close_after_ms`, unserved.
    Throttled { close_after_ms: i64 },
}

/// The `connection_creation_rate` that applies to connections from `ip`:
/// its own `ip` entity's, else the default IP's; `None` without one.
pub fn ip_quota(image: &MetadataImage, ip: IpAddr) -> Option<f64> {
    if !image.has_client_quotas() {
        return None;
    }
    let lookup = |name: Option<String>| {
        let mut entity = QuotaEntity::new();
        entity.insert(IP.to_string(), name);
        image
            .client_quotas(&entity)
            .and_then(|q| q.get(CONNECTION_CREATION_RATE))
            .map(|v| v.0)
    };
    let quota = lookup(Some(ip.to_canonical().to_string())).or_else(|| lookup(None))?;
    // Kafka's "unlimited" value (IP_CONNECTION_RATE_DEFAULT).
    (quota < i32::MAX as f64).then_some(quota)
}

#[derive(Debug)]
struct IpSensor {
    rate: Rate,
    last_record_ms: i64,
}

#[derive(Debug, Default)]
struct Sensors {
    broker: Rate,
    listeners: Vec<Rate>,
    ips: HashMap<IpAddr, IpSensor>,
    last_sweep_ms: i64,
}

/// The broker's connection creation rates.
#[derive(Debug)]
pub struct ConnectionRates {
    config: WindowConfig,
    /// `max.connection.creation.rate`; `None`: unlimited.
    broker_limit: Option<f64>,
    /// Each listener's `max.connection.creation.rate`, by listener index.
    listener_limits: Vec<Option<f64>>,
    /// The inter-broker listener's index, when it is one of several.
    protected: Option<usize>,
    sensors: Mutex<Sensors>,
}

impl ConnectionRates {
    /// `listener_limits` by listener index; `inter_broker` is the
    /// inter-broker listener's index.
    pub fn new(
        config: WindowConfig,
        broker_limit: Option<f64>,
        listener_limits: Vec<Option<f64>>,
        inter_broker: usize,
    ) -> Self {
        let protected = (listener_limits.len() > 1).then_some(inter_broker);
        let sensors = Sensors {
            listeners: vec![Rate::default(); listener_limits.len()],
            ..Sensors::default()
        };
        Self {
            config,
            broker_limit,
            listener_limits,
            protected,
            sensors: Mutex::new(sensors),
        }
    }

    fn max_throttle_ms(&self) -> i64 {
        self.config.window_ms
    }

    /// Records a connection accepted on `listener` from `ip` at `now_ms`
    /// and decides its fate; `ip_quota` is [`ip_quota`] for it.
    pub fn admit(
        &self,
        listener: usize,
        ip: IpAddr,
        ip_quota: Option<f64>,
        now_ms: i64,
    ) -> Admission {
        let config = self.config;
        let max = self.max_throttle_ms();
        let mut s = self.sensors.lock();
        // The broker-wide and listener rates: the longer delay wins.
        let counts_for_broker = self.protected != Some(listener);
        let mut delay_ms = 0;
        if counts_for_broker {
            if let Some(limit) = self.broker_limit {
                delay_ms = delay_ms.max(record(&mut s.broker, limit, now_ms, config, max));
            }
        }
        let listener_limit = self.listener_limits.get(listener).copied().flatten();
        if let Some(limit) = listener_limit {
            if let Some(rate) = s.listeners.get_mut(listener) {
                delay_ms = delay_ms.max(record(rate, limit, now_ms, config, max));
            }
        }
        let Some(quota) = ip_quota else {
            return Admission::Accept { delay_ms };
        };
        if now_ms - s.last_sweep_ms >= SWEEP_INTERVAL_MS {
            s.ips
                .retain(|_, sensor| now_ms - sensor.last_record_ms < IP_SENSOR_EXPIRY_MS);
            s.last_sweep_ms = now_ms;
        }
        let sensor = s.ips.entry(ip).or_insert(IpSensor {
            rate: Rate::default(),
            last_record_ms: now_ms,
        });
        sensor.last_record_ms = now_ms;
        let throttle = record(&mut sensor.rate, quota, now_ms, config, max);
        if throttle <= 0 {
            return Admission::Accept { delay_ms };
        }
        // Not accepted after all: off every rate it was recorded to.
        sensor.rate.record(-1.0, now_ms, config);
        if counts_for_broker && self.broker_limit.is_some() {
            s.broker.record(-1.0, now_ms, config);
        }
        if listener_limit.is_some() {
            if let Some(rate) = s.listeners.get_mut(listener) {
                rate.record(-1.0, now_ms, config);
            }
        }
        Admission::Throttled {
            close_after_ms: throttle,
        }
    }

    /// How many IPs have a sensor (tests).
    pub fn ip_sensor_count(&self) -> usize {
        self.sensors.lock().ips.len()
    }
}

/// Records one connection on `rate`; the throttle time when that puts it
/// over `limit` (Kafka: an upper-bound quota, violated above the bound).
fn record(rate: &mut Rate, limit: f64, now_ms: i64, config: WindowConfig, max_ms: i64) -> i64 {
    rate.record(1.0, now_ms, config);
    let observed = rate.measure(now_ms, config);
    if observed <= limit {
        return 0;
    }
    let window = rate.window_size_ms(now_ms, config);
    bounded_throttle_time_ms(observed, limit, window, max_ms).max(0)
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ip_over_its_rate_is_throttled_and_unrecorded() {
        let rates = ConnectionRates::new(CFG, None, vec![None], 0);
        // A quota of 1/s over at least ten windows: ten connections at once
        // are 1/s, the eleventh is over.
        for _ in 0..10 {
            assert_eq!(
                rates.admit(0, ip("10.0.0.1"), Some(1.0), 0),
                Admission::Accept { delay_ms: 0 }
            );
        }
        // 11/s over 10 s against 1/s: 10% over, a second; capped at one window.
        assert_eq!(
            rates.admit(0, ip("10.0.0.1"), Some(1.0), 0),
            Admission::Throttled {
                close_after_ms: 1000
            }
        );
        // The throttled one was taken back off: still over only by the next.
        assert!(matches!(
            rates.admit(0, ip("10.0.0.1"), Some(1.0), 0),
            Admission::Throttled { .. }
        ));
        // Another address has its own rate; no quota, no sensor.
        assert_eq!(
            rates.admit(0, ip("10.0.0.2"), Some(1.0), 0),
            Admission::Accept { delay_ms: 0 }
        );
        assert_eq!(
            rates.admit(0, ip("10.0.0.3"), None, 0),
            Admission::Accept { delay_ms: 0 }
        );
        assert_eq!(rates.ip_sensor_count(), 2);
        // Eleven seconds on, the windows have rolled over.
        assert_eq!(
            rates.admit(0, ip("10.0.0.1"), Some(1.0), 11_000),
            Admission::Accept { delay_ms: 0 }
        );
        // An hour idle: the sensors go on a sweep.
        rates.admit(0, ip("10.0.0.4"), Some(1.0), 11_000 + IP_SENSOR_EXPIRY_MS);
        assert_eq!(rates.ip_sensor_count(), 1);
    }

    #[test]
    fn broker_and_listener_rates_delay_and_spare_the_inter_broker_listener() {
        // Listener 0 is the inter-broker one; listener 1 has its own limit of 2/s.
        let rates = ConnectionRates::new(CFG, Some(1.0), vec![None, Some(2.0)], 0);
        let a = ip("10.0.0.1");
        for _ in 0..10 {
            assert_eq!(
                rates.admit(1, a, None, 0),
                Admission::Accept { delay_ms: 0 }
            );
        }
        // The broker's 1/s is exceeded by the eleventh: 10% over 10 s.
        assert_eq!(
            rates.admit(1, a, None, 0),
            Admission::Accept { delay_ms: 1000 }
        );
        // The inter-broker listener does not count towards the broker rate.
        assert_eq!(
            rates.admit(0, a, None, 0),
            Admission::Accept { delay_ms: 0 }
        );
        // Listener 1 alone: 2/s over 10 s is reached at 21 connections
        // (broker delay capped at a window meanwhile).
        let rates = ConnectionRates::new(CFG, None, vec![None, Some(2.0)], 0);
        for _ in 0..20 {
            assert_eq!(
                rates.admit(1, a, None, 0),
                Admission::Accept { delay_ms: 0 }
            );
        }
        assert_eq!(
            rates.admit(1, a, None, 0),
            Admission::Accept { delay_ms: 500 }
        );
        // A single listener is never protected from the broker-wide rate.
        let rates = ConnectionRates::new(CFG, Some(1.0), vec![None], 0);
        for _ in 0..10 {
            rates.admit(0, a, None, 0);
        }
        assert!(matches!(
            rates.admit(0, a, None, 0),
            Admission::Accept { delay_ms } if delay_ms > 0
        ));
    }

    #[test]
    fn an_ip_throttle_takes_the_connection_off_the_broker_rate() {
        let rates = ConnectionRates::new(CFG, Some(1.0), vec![None], 0);
        let a = ip("10.0.0.1");
        for _ in 0..10 {
            rates.admit(0, a, Some(1.0), 0);
        }
        for _ in 0..5 {
            assert!(matches!(
                rates.admit(0, a, Some(1.0), 0),
                Admission::Throttled { .. }
            ));
        }
        // Ten counted for the broker, not fifteen: the next (another IP) is
        // the eleventh.
        assert_eq!(
            rates.admit(0, ip("10.0.0.2"), None, 0),
            Admission::Accept { delay_ms: 1000 }
        );
    }

    fn image_with(parts: &[(&str, Option<&str>)], value: f64) -> MetadataImage {
        let mut image = MetadataImage::default();
        let parts: Vec<QuotaEntityPart> = parts
            .iter()
            .map(|(t, n)| QuotaEntityPart {
                entity_type: t.to_string(),
                entity_name: n.map(Into::into),
            })
            .collect();
        let op = QuotaOp {
            key: CONNECTION_CREATION_RATE.into(),
            value: Some(value),
        };
        for r in alter_entity(&image, &parts, &[op]).unwrap() {
            image.apply(&r);
        }
        image
    }

    #[test]
    fn ip_quota_resolves_own_then_default() {
        let image = image_with(&[(IP, Some("10.0.0.1"))], 5.0);
        assert_eq!(ip_quota(&image, ip("10.0.0.1")), Some(5.0));
        // An IPv4-mapped peer is the IPv4 address.
        assert_eq!(ip_quota(&image, ip("::ffff:10.0.0.1")), Some(5.0));
        assert_eq!(ip_quota(&image, ip("10.0.0.2")), None);
        let image = image_with(&[(IP, None)], 7.0);
        assert_eq!(ip_quota(&image, ip("10.0.0.2")), Some(7.0));
        let image = image_with(&[(IP, None)], i32::MAX as f64);
        assert_eq!(ip_quota(&image, ip("10.0.0.2")), None);
    }
}
