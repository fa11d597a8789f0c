//! UpdateFeatures (key 57), versions 0-1: changes the cluster's finalized
//! feature levels (KIP-584, kafka-features.sh), written as `FeatureLevel`
//! metadata records through the controller.
//!
//! All or nothing, as Kafka's controller decides it: one invalid update
//! fails the request, every feature then answers the same error. Level 0
//! disables a feature. Lowering a level needs the downgrade upgrade type
//! (v1: 2 safe, 3 unsafe; v0: `allow_downgrade`); this broker's features
//! (`transaction.version`) change no stored format a lower level could not
//! read, so a safe downgrade is always possible.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
use kafka_protocol::messages::{UpdateFeaturesRequest, UpdateFeaturesResponse};

use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;
use gregor_metadata::{MetadataImage, MetadataRecord};

/// Kafka's `FeatureUpdate.UpgradeType`.
const UPGRADE: i8 = 1;
const SAFE_DOWNGRADE: i8 = 2;
const UNSAFE_DOWNGRADE: i8 = 3;

type Refusal = (ResponseError, String);

/// One update as asked: (feature, level, downgrade allowed).
fn parse(version: i16, req: &UpdateFeaturesRequest) -> Result<Vec<(String, i16, bool)>, Refusal> {
    let mut out: Vec<(String, i16, bool)> = Vec::new();
    for u in &req.feature_updates {
        let name = u.feature.to_string();
        if out.iter().any(|(n, _, _)| *n == name) {
            return Err((
                ResponseError::InvalidRequest,
                format!("Feature {name} was specified more than once."),
            ));
        }
        let downgrade = if version >= 1 {
            match u.upgrade_type {
                UPGRADE => false,
                SAFE_DOWNGRADE | UNSAFE_DOWNGRADE => true,
                t => {
                    return Err((
                        ResponseError::InvalidRequest,
                        format!("Unknown upgrade type {t} for feature {name}."),
                    ))
                }
            }
        } else {
            u.allow_downgrade
        };
        out.push((name, u.max_version_level, downgrade));
    }
    Ok(out)
}

/// The records for `updates` on `image`, or why not.
fn decide(
    image: &MetadataImage,
    updates: &[(String, i16, bool)],
) -> Result<Vec<MetadataRecord>, Refusal> {
    let mut records = Vec::new();
    for (name, level, downgrade) in updates {
        let invalid = |why: String| {
            (
                ResponseError::InvalidUpdateVersion,
                format!("Invalid update version {level} for feature {name}. {why}"),
            )
        };
        let Some((min, max)) = crate::features::supported(name) else {
            return Err(invalid(
                "The controller does not support this feature.".into(),
            ));
        };
        if *level != 0 && (*level < min || *level > max) {
            return Err(invalid(format!(
                "The controller only supports versions {min}-{max}."
            )));
        }
        let current = image.feature_level(name);
        if *level < current && !downgrade {
            return Err(invalid(
                "Can't downgrade the version of this feature without setting the upgrade type to either safe or unsafe downgrade.".into(),
            ));
        }
        if *level > current && *downgrade {
            return Err(invalid("Can't downgrade to a newer version.".into()));
        }
        if *level != current {
            records.push(MetadataRecord::FeatureLevel {
                name: name.clone(),
                level: *level,
            });
        }
    }
    Ok(records)
}

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: UpdateFeaturesRequest,
) -> Option<UpdateFeaturesResponse> {
    // ALTER on the cluster.
    let allowed =
        super::acl_util::authorize_cluster(broker, ctx, gregor_security::acl::AclOperation::Alter);
    let outcome: Result<(), Refusal> = match parse(ctx.api_version, &req) {
        _ if !allowed => Err((
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.".to_string(),
        )),
        Err(e) => Err(e),
        Ok(updates) if req.validate_only => decide(&broker.metadata.image(), &updates).map(|_| ()),
        Ok(updates) => match broker
            .controller_update(|image| decide(image, &updates).map(|r| (r, ())))
            .await
        {
            Ok(r) => r,
            Err(e) => Err((ResponseError::UnknownServerError, e.to_string())),
        },
    };
    let mut resp = UpdateFeaturesResponse::default();
    let (code, message) = match &outcome {
        Ok(()) => (0, None),
        Err((e, m)) => (e.code(), Some(str_bytes(m.clone()))),
    };
    resp.error_code = code;
    resp.error_message = message.clone();
    resp.results = req
        .feature_updates
        .iter()
        .map(|u| {
            let mut r = UpdatableFeatureResult::default();
            r.feature = u.feature.clone();
            r.error_code = code;
            r.error_message = message.clone();
            r
        })
        .collect();
    if let Err((_, m)) = &outcome {
        tracing::info!(reason = %m, "UpdateFeatures refused");
    } else if !req.validate_only {
        tracing::info!(updates = ?req.feature_updates.iter().map(|u| (u.feature.to_string(), u.max_version_level)).collect::<Vec<_>>(),
            "finalized feature levels updated");
    }
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(level: i16) -> MetadataImage {
        MetadataImage::default().with_records(&[MetadataRecord::FeatureLevel {
            name: "transaction.version".into(),
            level,
        }])
    }

    fn up(level: i16, downgrade: bool) -> Vec<(String, i16, bool)> {
        vec![("transaction.version".into(), level, downgrade)]
    }

    #[test]
    fn upgrades_and_downgrades_follow_kafkas_rules() {
        assert_eq!(decide(&img(0), &up(2, false)).unwrap().len(), 1);
        assert!(
            decide(&img(2), &up(2, false)).unwrap().is_empty(),
            "no change"
        );
        let e = decide(&img(2), &up(0, false)).unwrap_err();
        assert_eq!(e.0, ResponseError::InvalidUpdateVersion);
        assert!(e.1.contains("safe or unsafe downgrade"), "{}", e.1);
        assert_eq!(decide(&img(2), &up(0, true)).unwrap().len(), 1);
        let e = decide(&img(0), &up(1, true)).unwrap_err();
        assert!(e.1.contains("newer version"), "{}", e.1);
        let e = decide(&img(0), &up(3, false)).unwrap_err();
        assert!(e.1.contains("versions 0-2"), "{}", e.1);
        let e = decide(&img(0), &[("no.such".into(), 1, false)]).unwrap_err();
        assert_eq!(e.0, ResponseError::InvalidUpdateVersion);
    }
}
