//! Kafka's connection limits (`ConnectionQuotas` in its `SocketServer`):
//! `max.connections` for the whole broker, `max.connections.per.ip` with
//! `max.connections.per.ip.overrides` for each client address. A connection
//! over a limit is closed as soon as it is accepted, before a byte is read,
//! and logged with its peer; one that closes gives its slots back.
//! Connections on the inter-broker listener are admitted past
//! `max.connections` (Kafka's rule: clients may not starve replication);
//! the per-IP limits hold on every listener.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;

use parking_lot::Mutex;

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the broker has {0} connections (max.connections)")]
    Broker(usize),
    #[error("{ip} has {count} connections (max.connections.per.ip)")]
    PerIp { ip: IpAddr, count: u32 },
}

/// The limits and the live counts.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: u32,
    overrides: HashMap<IpAddr, u32>,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, u32>,
}

/// One admitted connection's slots, given back on drop.
#[derive(Debug)]
pub struct Admitted {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let ip = self.ip;
        let mut c = self.limits.counts.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&ip);
            }
        }
    }
}

/// `max.connections.per.ip.overrides`: `host:count` pairs separated by
/// commas, a host being an IP address or a name resolved now (Kafka
/// resolves them when the config is read).
pub fn parse_overrides(text: &str) -> Result<HashMap<IpAddr, u32>, String> {
    let mut out = HashMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, count) = entry
            .rsplit_once(':')
            .ok_or_else(|| format!("'{entry}' is not host:count"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("'{count}' in '{entry}' is not a connection count"))?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let ips: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (host, 0)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve '{host}': {e}"))?
                .map(|a| a.ip())
                .collect(),
        };
        for ip in ips {
            out.insert(ip, count);
        }
    }
    Ok(out)
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_ip: u32, overrides: HashMap<IpAddr, u32>) -> Self {
        ConnectionLimits {
            max_total,
            max_per_ip,
            overrides,
            counts: Mutex::new(Counts::default()),
        }
    }

    /// No limit at all (Kafka's defaults).
    pub fn unlimited() -> Self {
        Self::new(usize::MAX, u32::MAX, HashMap::new())
    }

    /// Admits a connection from `ip`, or says which limit it is over.
    /// `inter_broker` connections may exceed `max.connections` (they still
    /// count towards it).
    pub fn admit(self: &Arc<Self>, ip: IpAddr, inter_broker: bool) -> Result<Admitted, Refused> {
        let limit = self.overrides.get(&ip).copied().unwrap_or(self.max_per_ip);
        let mut c = self.counts.lock();
        if c.total >= self.max_total && !inter_broker {
            return Err(Refused::Broker(c.total));
        }
        let n = c.per_ip.entry(ip).or_insert(0);
        if *n >= limit {
            let count = *n;
            if count == 0 {
                c.per_ip.remove(&ip);
            }
            return Err(Refused::PerIp { ip, count });
        }
        *n += 1;
        c.total += 1;
        Ok(Admitted {
            limits: self.clone(),
            ip,
        })
    }

    /// Open counted connections: `(total, from ip)`.
    pub fn counts(&self, ip: IpAddr) -> (usize, u32) {
        let c = self.counts.lock();
        (c.total, c.per_ip.get(&ip).copied().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_ip_and_total_limits_with_overrides() {
        let overrides = parse_overrides("10.0.0.2:0, 10.0.0.3:3").unwrap();
        let limits = Arc::new(ConnectionLimits::new(4, 2, overrides));
        let a1 = limits.admit(ip("10.0.0.1"), false).unwrap();
        let _a2 = limits.admit(ip("10.0.0.1"), false).unwrap();
        assert_eq!(
            limits.admit(ip("10.0.0.1"), false).unwrap_err(),
            Refused::PerIp {
                ip: ip("10.0.0.1"),
                count: 2
            }
        );
        // An override of 0 refuses every connection from that address.
        assert!(limits.admit(ip("10.0.0.2"), false).is_err());
        let _b1 = limits.admit(ip("10.0.0.3"), false).unwrap();
        let _b2 = limits.admit(ip("10.0.0.3"), false).unwrap();
        // Four counted: the broker-wide limit refuses the next one...
        assert_eq!(
            limits.admit(ip("10.0.0.4"), false).unwrap_err(),
            Refused::Broker(4)
        );
        // ...but not the inter-broker listener's, which still counts; the
        // per-IP limit holds there too.
        let exempt = limits.admit(ip("10.0.0.5"), true).unwrap();
        assert_eq!(limits.counts(ip("10.0.0.5")), (5, 1));
        assert!(limits.admit(ip("10.0.0.1"), true).is_err());
        drop(exempt);
        // A closed connection gives its slots back.
        drop(a1);
        assert_eq!(limits.counts(ip("10.0.0.1")), (3, 1));
        assert!(limits.admit(ip("10.0.0.1"), false).is_ok());
    }

    #[test]
    fn overrides_parse_like_kafka() {
        let o = parse_overrides("localhost:9,127.0.0.1:5,[::1]:7").unwrap();
        assert_eq!(o.get(&ip("127.0.0.1")), Some(&5));
        assert_eq!(o.get(&ip("::1")), Some(&7));
        assert!(!parse_overrides("localhost:9").unwrap().is_empty());
        assert!(parse_overrides("").unwrap().is_empty());
        assert!(parse_overrides("10.0.0.1").is_err());
        assert!(parse_overrides("10.0.0.1:x").is_err());
        assert!(parse_overrides("no-such-host.invalid:1").is_err());
    }
}
