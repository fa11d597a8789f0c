//! DeleteTopics (key 20), versions 1-6 (by name, or by id from v6).

use gregor_metadata::controller;
use gregor_security::acl::{AclOperation, ResourceType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::acl_util;
use super::util::{self, str_bytes};
use super::{quota_util, RequestContext};
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteTopicsRequest,
) -> Option<DeleteTopicsResponse> {
    let mut resp = DeleteTopicsResponse::default();
    // v0-5 list names; v6 lists (name | id) states.
    let targets: Vec<(Option<String>, uuid::Uuid)> = if ctx.api_version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    for (name, id) in targets {
        let mut r = DeletableTopicResult::default();
        r.error_message = None;
        let v6 = ctx.api_version >= 6;
        if v6 {
            r.topic_id = id;
        }
        let image = broker.metadata.image();
        let resolved = match &name {
            Some(n) => image.topic(n),
            None => image.topic_by_id(&id),
        };
        r.name = name
            .clone()
            .or_else(|| resolved.map(|t| t.name.clone()))
            .map(|n| TopicName(str_bytes(n)));
        // Kafka: DELETE on the topic, asked before saying whether it exists.
        let topic_name = name
            .clone()
            .or_else(|| resolved.map(|t| t.name.to_string()));
        if let Some(n) = &topic_name {
            if !acl_util::authorize(broker, ctx, AclOperation::Delete, ResourceType::Topic, n) {
                r.error_code = ResponseError::TopicAuthorizationFailed.code();
                resp.responses.push(r);
                continue;
            }
        }
        let Some(topic) = resolved else {
            r.error_code = if name.is_some() {
                ResponseError::UnknownTopicOrPartition
            } else {
                ResponseError::UnknownTopicId
            }
            .code();
            resp.responses.push(r);
            continue;
        };
        if v6 {
            r.topic_id = topic.topic_id;
        }
        if !broker.config.delete_topic_enable {
            r.error_code = ResponseError::TopicDeletionDisabled.code();
            resp.responses.push(r);
            continue;
        }
        // Strict from v5 (THROTTLING_QUOTA_EXCEEDED), as Kafka.
        let permits = topic.partitions.len();
        if let Err(e) = quota_util::record_mutation(broker, ctx, permits, ctx.api_version >= 5) {
            r.error_code = e.code();
            if ctx.api_version >= 5 {
                r.error_message = Some(str_bytes(quota_util::THROTTLED));
            }
            resp.responses.push(r);
            continue;
        }
        let topic_name = topic.name.clone();
        match broker
            .controller_update(|image| {
                controller::delete_topic(image, &topic_name).map(|recs| (recs, ()))
            })
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                r.error_code = util::controller_error(&e).code();
                if ctx.api_version >= 5 {
                    r.error_message = Some(str_bytes(e.to_string()));
                }
            }
            Err(e) => {
                tracing::error!(topic = %topic_name, error = %e, "deleting topic failed");
                r.error_code = ResponseError::KafkaStorageError.code();
                if ctx.api_version >= 5 {
                    r.error_message = Some(str_bytes(e.to_string()));
                }
            }
        }
        resp.responses.push(r);
    }
    resp.throttle_time_ms = quota_util::mutation_throttle(broker, ctx, 2);
    Some(resp)
}
