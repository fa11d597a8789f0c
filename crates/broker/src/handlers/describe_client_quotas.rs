//! DescribeClientQuotas (key 48), versions 0-1: the client quota entities a
//! filter selects, with their quotas, from this broker's metadata image
//! (Kafka's `ClientQuotasImage.describe`). Needs DESCRIBE_CONFIGS on the
//! cluster when an authorizer is set.

use gregor_metadata::quotas::{self, FilterComponent, QuotaError};
use gregor_security::acl::AclOperation;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};

use super::util::str_bytes;
use super::{acl_util, RequestContext};
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeClientQuotasRequest,
) -> Option<DescribeClientQuotasResponse> {
    let mut resp = DescribeClientQuotasResponse::default();
    resp.error_message = None;
    if !acl_util::authorize_cluster(broker, ctx, AclOperation::DescribeConfigs) {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        resp.error_message = Some(str_bytes("Cluster authorization failed.".to_string()));
        return Some(resp);
    }
    let components: Vec<FilterComponent> = req
        .components
        .iter()
        .map(|c| FilterComponent {
            entity_type: c.entity_type.to_string(),
            match_type: c.match_type,
            r#match: c._match.as_ref().map(|m| m.to_string()),
        })
        .collect();
    let image = broker.metadata.image();
    match quotas::describe(&image, &components, req.strict) {
        Err(e) => {
            let code = match e {
                QuotaError::InvalidRequest(_) => ResponseError::InvalidRequest,
                QuotaError::Unsupported(_) => ResponseError::UnsupportedVersion,
            };
            resp.error_code = code.code();
            resp.error_message = Some(str_bytes(e.to_string()));
        }
        Ok(found) => {
            let entries = found
                .into_iter()
                .map(|(entity, values)| {
                    let mut e = EntryData::default();
                    e.entity = entity
                        .iter()
                        .map(|(t, n)| {
                            let mut d = EntityData::default();
                            d.entity_type = str_bytes(t.clone());
                            d.entity_name = n.clone().map(str_bytes);
                            d
                        })
                        .collect();
                    e.values = values
                        .iter()
                        .map(|(k, v)| {
                            let mut d = ValueData::default();
                            d.key = str_bytes(k.clone());
                            d.value = v.0;
                            d
                        })
                        .collect();
                    e
                })
                .collect();
            resp.entries = Some(entries);
        }
    }
    Some(resp)
}
