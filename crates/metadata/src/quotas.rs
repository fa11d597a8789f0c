//! Client quotas: AlterClientQuotas' decision and DescribeClientQuotas'
//! filter (Kafka's `ClientQuotaControlManager` and `ClientQuotasImage`).
//!
//! An entity is a set of (type, name) parts: `user`, `client-id`, the two
//! together, or `ip`; a `None` name is the type's default (`<default>`).
//! Each entity holds quotas by key; a [`MetadataRecord::ClientQuota`] sets
//! or removes one.

use std::collections::{BTreeMap, BTreeSet};

use crate::records::{QuotaEntityPart, QuotaValue};
use crate::{MetadataImage, MetadataRecord};

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// A client quota entity: type to name (`None`: the type's default). The
/// map keeps the parts in one order, whatever order a request used.
pub type QuotaEntity = BTreeMap<String, Option<String>>;

/// The type of a quota key's value (Kafka's `QuotaConfig` definitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    Long,
    Int,
    Double,
}

impl KeyType {
    fn name(self) -> &'static str {
        match self {
            KeyType::Long => "LONG",
            KeyType::Int => "INT",
            KeyType::Double => "DOUBLE",
        }
    }
}

/// The keys a user / client-id entity may hold, and an ip entity's.
const CLIENT_KEYS: &[(&str, KeyType)] = &[
    (PRODUCER_BYTE_RATE, KeyType::Long),
    (CONSUMER_BYTE_RATE, KeyType::Long),
    (REQUEST_PERCENTAGE, KeyType::Double),
    (CONTROLLER_MUTATION_RATE, KeyType::Double),
];
const IP_KEYS: &[(&str, KeyType)] = &[(CONNECTION_CREATION_RATE, KeyType::Int)];

/// Why a request (or one entity of it) was refused; messages are Kafka's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// INVALID_REQUEST.
    #[error("{0}")]
    InvalidRequest(String),
    /// UNSUPPORTED_VERSION: an entity type or match type Kafka does not know.
    #[error("{0}")]
    Unsupported(String),
}

fn invalid(message: impl Into<String>) -> QuotaError {
    QuotaError::InvalidRequest(message.into())
}

/// Checks an entity's parts and builds the entity (Kafka's
/// `ClientQuotaControlManager.validateEntity`).
pub fn entity(parts: &[QuotaEntityPart]) -> Result<QuotaEntity, QuotaError> {
    if parts.is_empty() {
        return Err(invalid("Invalid empty client quota entity"));
    }
    let mut entity = QuotaEntity::new();
    for p in parts {
        if entity.contains_key(&p.entity_type) {
            return Err(invalid(format!(
                "Invalid empty client quota entity, duplicate entity entry {}",
                p.entity_type
            )));
        }
        match p.entity_type.as_str() {
            USER | CLIENT_ID => {}
            IP => {
                if let Some(name) = &p.entity_name {
                    if !name.is_empty() && name.parse::<std::net::IpAddr>().is_err() {
                        return Err(invalid(format!("{name} is not a valid IP")));
                    }
                }
            }
            other => {
                return Err(QuotaError::Unsupported(format!(
                    "Unhandled client quota entity type: {other}"
                )))
            }
        }
        if p.entity_name.as_deref() == Some("") {
            return Err(invalid(format!("Empty {} not supported", p.entity_type)));
        }
        entity.insert(p.entity_type.clone(), p.entity_name.clone());
    }
    if entity.contains_key(IP) && entity.len() > 1 {
        return Err(invalid(
            "Invalid quota entity combination, IP entity should not be combined with User or ClientId",
        ));
    }
    Ok(entity)
}

/// The parts of `entity`, for a record.
pub fn parts(entity: &QuotaEntity) -> Vec<QuotaEntityPart> {
    entity
        .iter()
        .map(|(t, n)| QuotaEntityPart {
            entity_type: t.clone(),
            entity_name: n.clone(),
        })
        .collect()
}

/// One change of an AlterClientQuotas entry: set `key` to `value`, or
/// remove it (`None`).
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaOp {
    pub key: String,
    pub value: Option<f64>,
}

/// Checks one value for `key` (Kafka's `validateQuotaKeyValue`): a LONG or
/// INT key takes whole numbers only.
fn check_value(key: &str, kind: KeyType, value: f64) -> Result<(), QuotaError> {
    if !value.is_finite() {
        return Err(invalid(format!(
            "Invalid value {value} for configuration {key}"
        )));
    }
    if kind == KeyType::Int && value > i32::MAX as f64 {
        return Err(invalid(format!(
            "Proposed value for {key} is too large for a INT."
        )));
    }
    if kind != KeyType::Double {
        let epsilon = 1e-6;
        let whole = (value + epsilon).trunc();
        if (whole - value).abs() > epsilon {
            return Err(invalid(format!(
                "Configuration {key} must be a {} value",
                kind.name()
            )));
        }
    }
    Ok(())
}

/// Decides one entity's alteration: the records that apply it, or why it
/// is refused (Kafka's `ClientQuotaControlManager.alterClientQuota`).
pub fn alter_entity(
    image: &MetadataImage,
    parts_in: &[QuotaEntityPart],
    ops: &[QuotaOp],
) -> Result<Vec<MetadataRecord>, QuotaError> {
    let entity = entity(parts_in)?;
    let keys = if entity.contains_key(IP) {
        IP_KEYS
    } else {
        CLIENT_KEYS
    };
    let current = image.client_quotas(&entity);
    let mut seen = BTreeSet::new();
    let mut records = Vec::new();
    for op in ops {
        if !seen.insert(op.key.as_str()) {
            return Err(invalid(format!(
                "Duplicate quota key {} in the entity's alterations",
                op.key
            )));
        }
        let Some(&(_, kind)) = keys.iter().find(|(k, _)| *k == op.key) else {
            return Err(invalid(format!("Invalid configuration key {}", op.key)));
        };
        match op.value {
            Some(value) => {
                check_value(&op.key, kind, value)?;
                records.push(MetadataRecord::ClientQuota {
                    entity: parts(&entity),
                    key: op.key.clone(),
                    value: QuotaValue(value),
                    remove: false,
                });
            }
            // Removing a quota that is not set changes nothing.
            None if current.is_some_and(|q| q.contains_key(&op.key)) => {
                records.push(MetadataRecord::ClientQuota {
                    entity: parts(&entity),
                    key: op.key.clone(),
                    value: QuotaValue(0.0),
                    remove: true,
                });
            }
            None => {}
        }
    }
    Ok(records)
}

/// How a DescribeClientQuotas filter component matches an entity type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchType {
    /// 0: exactly this name.
    Exact(String),
    /// 1: the type's default.
    Default,
    /// 2: any entity with this type.
    Specified,
}

/// An entity with its quotas by key, as the image holds them.
pub type EntityQuotas<'a> = (&'a QuotaEntity, &'a BTreeMap<String, QuotaValue>);

/// One component of a DescribeClientQuotas filter, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterComponent {
    pub entity_type: String,
    pub match_type: i8,
    pub r#match: Option<String>,
}

/// The entities (with their quotas) a DescribeClientQuotas filter selects,
/// in entity order (Kafka's `ClientQuotasImage.describe`). `strict`: the
/// entity has no parts besides the filtered ones.
pub fn describe<'a>(
    image: &'a MetadataImage,
    components: &[FilterComponent],
    strict: bool,
) -> Result<Vec<EntityQuotas<'a>>, QuotaError> {
    let mut filter: BTreeMap<&str, MatchType> = BTreeMap::new();
    for c in components {
        if c.entity_type.is_empty() {
            return Err(invalid("Invalid empty entity type."));
        }
        if filter.contains_key(c.entity_type.as_str()) {
            return Err(invalid(format!(
                "Entity type {} cannot appear more than once in the filter.",
                c.entity_type
            )));
        }
        if ![USER, CLIENT_ID, IP].contains(&c.entity_type.as_str()) {
            return Err(QuotaError::Unsupported(format!(
                "Unsupported entity type {}",
                c.entity_type
            )));
        }
        let m =
            match (c.match_type, &c.r#match) {
                (0, Some(name)) => MatchType::Exact(name.clone()),
                (0, None) => {
                    return Err(invalid(
                        "Request specified MATCH_TYPE_EXACT, but set match string to null.",
                    ))
                }
                (1, None) => MatchType::Default,
                (1, Some(_)) => {
                    return Err(invalid(
                        "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.",
                    ))
                }
                (2, None) => MatchType::Specified,
                (2, Some(_)) => return Err(invalid(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.",
                )),
                (other, _) => {
                    return Err(QuotaError::Unsupported(format!(
                        "Unknown match type {other}"
                    )))
                }
            };
        filter.insert(c.entity_type.as_str(), m);
    }
    if filter.contains_key(IP) && (filter.contains_key(USER) || filter.contains_key(CLIENT_ID)) {
        return Err(invalid("Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component."));
    }
    Ok(image
        .all_client_quotas()
        .filter(|(entity, _)| matches(entity, &filter, strict))
        .collect())
}

fn matches(entity: &QuotaEntity, filter: &BTreeMap<&str, MatchType>, strict: bool) -> bool {
    if strict && entity.len() != filter.len() {
        return false;
    }
    filter.iter().all(|(t, m)| match (entity.get(*t), m) {
        (None, _) => false,
        (Some(name), MatchType::Exact(want)) => name.as_deref() == Some(want.as_str()),
        (Some(name), MatchType::Default) => name.is_none(),
        (Some(_), MatchType::Specified) => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(t: &str, n: Option<&str>) -> QuotaEntityPart {
        QuotaEntityPart {
            entity_type: t.into(),
            entity_name: n.map(Into::into),
        }
    }

    fn set(key: &str, value: f64) -> QuotaOp {
        QuotaOp {
            key: key.into(),
            value: Some(value),
        }
    }

    #[test]
    fn entity_validation() {
        assert!(matches!(entity(&[]), Err(QuotaError::InvalidRequest(_))));
        assert!(matches!(
            entity(&[part("group", Some("g"))]),
            Err(QuotaError::Unsupported(_))
        ));
        assert!(entity(&[part(USER, Some("a")), part(USER, Some("b"))]).is_err());
        assert!(entity(&[part(USER, Some(""))]).is_err());
        assert!(entity(&[part(IP, Some("not-an-ip"))]).is_err());
        assert!(entity(&[part(IP, Some("10.0.0.1")), part(USER, None)]).is_err());
        let e = entity(&[part(CLIENT_ID, Some("c")), part(USER, None)]).unwrap();
        assert_eq!(e.keys().collect::<Vec<_>>(), vec![CLIENT_ID, USER]);
    }

    #[test]
    fn alter_validates_keys_and_values() {
        let image = MetadataImage::default();
        let user = [part(USER, Some("alice"))];
        let e = |ops: &[QuotaOp]| alter_entity(&image, &user, ops).unwrap_err().to_string();
        assert_eq!(e(&[set("nope", 1.0)]), "Invalid configuration key nope");
        assert_eq!(
            e(&[set(PRODUCER_BYTE_RATE, 1.5)]),
            "Configuration producer_byte_rate must be a LONG value"
        );
        assert!(alter_entity(&image, &user, &[set(CONNECTION_CREATION_RATE, 1.0)]).is_err());
        assert!(alter_entity(&image, &user, &[set(REQUEST_PERCENTAGE, f64::NAN)]).is_err());
        assert!(alter_entity(
            &image,
            &user,
            &[set(PRODUCER_BYTE_RATE, 1.0), set(PRODUCER_BYTE_RATE, 2.0)]
        )
        .is_err());
        let ip = [part(IP, None)];
        assert!(alter_entity(&image, &ip, &[set(PRODUCER_BYTE_RATE, 1.0)]).is_err());
        assert_eq!(
            alter_entity(&image, &ip, &[set(CONNECTION_CREATION_RATE, 10.0)])
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            alter_entity(&image, &user, &[set(REQUEST_PERCENTAGE, 12.5)])
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn alter_then_remove_then_describe() {
        let mut image = MetadataImage::default();
        let both = [part(USER, Some("alice")), part(CLIENT_ID, None)];
        let client = [part(CLIENT_ID, Some("c1"))];
        for (entity, ops) in [
            (&both[..], vec![set(PRODUCER_BYTE_RATE, 100.0)]),
            (&client[..], vec![set(CONSUMER_BYTE_RATE, 200.0)]),
        ] {
            for r in alter_entity(&image, entity, &ops).unwrap() {
                image.apply(&r);
            }
        }
        let f = |t: &str, m: i8, n: Option<&str>| FilterComponent {
            entity_type: t.into(),
            match_type: m,
            r#match: n.map(Into::into),
        };
        assert_eq!(describe(&image, &[], false).unwrap().len(), 2);
        assert_eq!(describe(&image, &[], true).unwrap().len(), 0);
        let user = describe(&image, &[f(USER, 0, Some("alice"))], false).unwrap();
        assert_eq!(user.len(), 1);
        assert_eq!(user[0].1[PRODUCER_BYTE_RATE], QuotaValue(100.0));
        assert!(describe(&image, &[f(USER, 0, Some("alice"))], true)
            .unwrap()
            .is_empty());
        assert_eq!(
            describe(&image, &[f(CLIENT_ID, 1, None)], false)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            describe(&image, &[f(CLIENT_ID, 2, None)], true)
                .unwrap()
                .len(),
            1
        );
        assert!(describe(&image, &[f(CLIENT_ID, 0, None)], false).is_err());
        assert!(describe(&image, &[f(USER, 1, None), f(USER, 2, None)], false).is_err());
        assert!(describe(&image, &[f(IP, 2, None), f(USER, 2, None)], false).is_err());
        assert!(matches!(
            describe(&image, &[f(USER, 7, None)], false),
            Err(QuotaError::Unsupported(_))
        ));
        // Removing the entity's last quota removes the entity.
        let remove = QuotaOp {
            key: PRODUCER_BYTE_RATE.into(),
            value: None,
        };
        let records = alter_entity(&image, &both, std::slice::from_ref(&remove)).unwrap();
        assert_eq!(records.len(), 1);
        let before = image.clone();
        for r in &records {
            image.apply(r);
        }
        assert_eq!(describe(&image, &[], false).unwrap().len(), 1);
        // Removing it again writes nothing.
        assert!(alter_entity(&image, &both, &[remove]).unwrap().is_empty());
        // Snapshots keep quotas.
        assert_eq!(
            MetadataImage::default().with_records(&before.to_records()),
            before
        );
    }
}
