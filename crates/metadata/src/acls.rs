//! The controller's decisions for CreateAcls and DeleteAcls, and the lookup
//! DescribeAcls makes (Kafka's `AclControlManager`): image and request in,
//! records and per-item outcomes out.
//!
//! - Creating an ACL that exists (same pattern and entry) succeeds without
//!   a record, as does naming it twice in one request: an ACL exists once.
//! - A delete filter removes every ACL it matches; an ACL matched by several
//!   filters is reported under each but removed by one record.
//! - A filter or binding Kafka would refuse fails that item alone, with
//!   [`AclError`] (INVALID_REQUEST).

use std::collections::BTreeSet;

use gregor_security::acl::{AclBinding, AclBindingFilter, AclError};
use uuid::Uuid;

use crate::{MetadataImage, MetadataRecord};

/// Decides a CreateAcls request: the records to append and each binding's
/// outcome, in request order. `new_id` supplies fresh ids (random in the
/// broker); one already in use is skipped.
pub fn create_acls(
    image: &MetadataImage,
    bindings: &[AclBinding],
    new_id: &mut dyn FnMut() -> Uuid,
) -> (Vec<MetadataRecord>, Vec<Result<(), AclError>>) {
    let existing: BTreeSet<&AclBinding> = image.acls().map(|(_, b)| b).collect();
    let mut used: BTreeSet<Uuid> = image.acls().map(|(id, _)| *id).collect();
    let mut added: BTreeSet<&AclBinding> = BTreeSet::new();
    let mut records = Vec::new();
    let results = bindings
        .iter()
        .map(|b| {
            b.validate_new()?;
            if !existing.contains(b) && added.insert(b) {
                let id = loop {
                    let id = new_id();
                    if used.insert(id) {
                        break id;
                    }
                };
                records.push(MetadataRecord::acl(id, b));
            }
            Ok(())
        })
        .collect();
    (records, results)
}

/// Each filter's outcome in a DeleteAcls request: the bindings it removed.
pub type DeleteAclsResults = Vec<Result<Vec<AclBinding>, AclError>>;

/// Decides a DeleteAcls request: the records that remove every ACL a
/// (valid) filter matches, and per filter the bindings it matched.
pub fn delete_acls(
    image: &MetadataImage,
    filters: &[AclBindingFilter],
) -> (Vec<MetadataRecord>, DeleteAclsResults) {
    let mut removed: BTreeSet<Uuid> = BTreeSet::new();
    let results = filters
        .iter()
        .map(|f| {
            f.validate()?;
            Ok(image
                .acls()
                .filter(|(_, b)| f.matches(b))
                .map(|(id, b)| {
                    removed.insert(*id);
                    b.clone()
                })
                .collect())
        })
        .collect();
    let records = removed
        .into_iter()
        .map(|id| MetadataRecord::RemoveAccessControlEntry { id })
        .collect();
    (records, results)
}

/// The ACLs a DescribeAcls filter selects.
pub fn describe_acls(
    image: &MetadataImage,
    filter: &AclBindingFilter,
) -> Result<Vec<AclBinding>, AclError> {
    filter.validate()?;
    Ok(image
        .acls()
        .map(|(_, b)| b)
        .filter(|b| filter.matches(b))
        .cloned()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_security::acl::{
        AccessControlEntry, AclOperation, PatternType, PermissionType, ResourcePattern,
        ResourceType,
    };

    fn binding(name: &str, pt: PatternType, op: AclOperation) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern {
                resource_type: ResourceType::Topic,
                name: name.into(),
                pattern_type: pt,
            },
            entry: AccessControlEntry {
                principal: "User:alice".into(),
                host: "*".into(),
                operation: op,
                permission: PermissionType::Allow,
            },
        }
    }

    fn ids() -> impl FnMut() -> Uuid {
        let mut n = 0u128;
        move || {
            n += 1;
            Uuid::from_u128(n / 2) // each id offered twice: collisions are skipped
        }
    }

    fn create(image: &MetadataImage, bindings: &[AclBinding]) -> MetadataImage {
        let (records, results) = create_acls(image, bindings, &mut ids());
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        image.with_records(&records)
    }

    #[test]
    fn create_is_idempotent_and_validates_each_binding() {
        let read = binding("t", PatternType::Literal, AclOperation::Read);
        let image = create(&MetadataImage::default(), &[read.clone(), read.clone()]);
        assert_eq!(image.acls().count(), 1);
        let mut bad = read.clone();
        bad.pattern.pattern_type = PatternType::Match;
        let write = binding("t", PatternType::Literal, AclOperation::Write);
        let (records, results) = create_acls(&image, &[read, bad, write], &mut ids());
        assert_eq!(records.len(), 1, "only WRITE is new");
        assert!(results[0].is_ok() && results[2].is_ok());
        assert_eq!(results[1], Err(AclError::PatternType(PatternType::Match)));
        let image = image.with_records(&records);
        let uuids: BTreeSet<_> = image.acls().map(|(id, _)| *id).collect();
        assert_eq!(uuids.len(), 2, "fresh ids");
    }

    #[test]
    fn delete_removes_every_match_once_and_reports_per_filter() {
        let lit = binding("logs-1", PatternType::Literal, AclOperation::Read);
        let pre = binding("logs-", PatternType::Prefixed, AclOperation::Read);
        let other = binding("x", PatternType::Literal, AclOperation::Read);
        let image = create(
            &MetadataImage::default(),
            &[lit.clone(), pre.clone(), other],
        );
        let mut matching = AclBindingFilter::any();
        matching.pattern.name = Some("logs-1".into());
        matching.pattern.pattern_type = PatternType::Match;
        let mut prefixed = AclBindingFilter::any();
        prefixed.pattern.pattern_type = PatternType::Prefixed;
        let mut unknown = AclBindingFilter::any();
        unknown.entry.permission = PermissionType::Unknown;
        let (records, results) = delete_acls(&image, &[matching, prefixed, unknown]);
        assert_eq!(records.len(), 2);
        assert_eq!(results[0].as_ref().unwrap().len(), 2);
        assert_eq!(results[1].as_ref().unwrap(), &vec![pre]);
        assert_eq!(results[2], Err(AclError::UnknownEntryFilter));
        let image = image.with_records(&records);
        let left = describe_acls(&image, &AclBindingFilter::any()).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].pattern.name, "x");
        assert!(!left.contains(&lit));
    }

    #[test]
    fn acls_survive_a_snapshot() {
        let image = create(
            &MetadataImage::default(),
            &[binding("t", PatternType::Prefixed, AclOperation::All)],
        );
        let restored = MetadataImage::default().with_records(&image.to_records());
        assert_eq!(restored, image);
    }
}
