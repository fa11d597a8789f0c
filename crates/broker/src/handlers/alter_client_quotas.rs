//! AlterClientQuotas (key 49), versions 0-1: set or remove quotas of client
//! quota entities through the controller (Kafka's
//! `ClientQuotaControlManager`). Each entity succeeds or fails on its own;
//! `validate_only` checks without writing. Needs ALTER_CONFIGS on the
//! cluster when an authorizer is set.

use gregor_metadata::quotas::{self, QuotaError, QuotaOp};
use gregor_metadata::QuotaEntityPart;
use gregor_security::acl::AclOperation;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};

use super::util::str_bytes;
use super::{acl_util, RequestContext};
use crate::broker::Broker;

type Outcome = Result<(), (ResponseError, String)>;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterClientQuotasRequest,
) -> Option<AlterClientQuotasResponse> {
    let entries: Vec<(Vec<QuotaEntityPart>, Vec<QuotaOp>)> = req
        .entries
        .iter()
        .map(|e| {
            let parts = e
                .entity
                .iter()
                .map(|p| QuotaEntityPart {
                    entity_type: p.entity_type.to_string(),
                    entity_name: p.entity_name.as_ref().map(|n| n.to_string()),
                })
                .collect();
            let ops = e
                .ops
                .iter()
                .map(|o| QuotaOp {
                    key: o.key.to_string(),
                    value: (!o.remove).then_some(o.value),
                })
                .collect();
            (parts, ops)
        })
        .collect();
    let outcomes: Vec<Outcome> =
        if !acl_util::authorize_cluster(broker, ctx, AclOperation::AlterConfigs) {
            let denied = (
                ResponseError::ClusterAuthorizationFailed,
                "Cluster authorization failed.".to_string(),
            );
            vec![Err(denied); entries.len()]
        } else {
            let validate_only = req.validate_only;
            let decided = broker
                .controller_update(|image| {
                    let mut records = Vec::new();
                    let mut outcomes = Vec::new();
                    for (parts, ops) in &entries {
                        match quotas::alter_entity(image, parts, ops) {
                            Ok(r) => {
                                if !validate_only {
                                    records.extend(r);
                                }
                                outcomes.push(Ok(()));
                            }
                            Err(e) => outcomes.push(Err(e)),
                        }
                    }
                    Ok::<_, std::convert::Infallible>((records, outcomes))
                })
                .await;
            match decided {
                Ok(Ok(outcomes)) => outcomes
                    .into_iter()
                    .map(|o| o.map_err(|e| (error_code(&e), e.to_string())))
                    .collect(),
                Ok(Err(never)) => match never {},
                Err(e) => {
                    let failed = (ResponseError::UnknownServerError, e.to_string());
                    vec![Err(failed); entries.len()]
                }
            }
        };
    let mut resp = AlterClientQuotasResponse::default();
    for (entry, outcome) in req.entries.iter().zip(outcomes) {
        let mut r = EntryData::default();
        r.entity = entry
            .entity
            .iter()
            .map(|p| {
                let mut d = EntityData::default();
                d.entity_type = p.entity_type.clone();
                d.entity_name = p.entity_name.clone();
                d
            })
            .collect();
        // Kafka answers a success with a null message.
        r.error_message = None;
        if let Err((code, message)) = outcome {
            r.error_code = code.code();
            r.error_message = Some(str_bytes(message));
        }
        resp.entries.push(r);
    }
    Some(resp)
}

fn error_code(e: &QuotaError) -> ResponseError {
    match e {
        QuotaError::InvalidRequest(_) => ResponseError::InvalidRequest,
        QuotaError::Unsupported(_) => ResponseError::UnsupportedVersion,
    }
}
