//! CreatePartitions (key 37), versions 0-3: grows a topic (never shrinks).

use gregor_metadata::controller;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::util::{self, str_bytes};
use super::{quota_util, RequestContext};
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreatePartitionsRequest,
) -> Option<CreatePartitionsResponse> {
    let mut resp = CreatePartitionsResponse::default();
    let authz = super::acl_util::Authz::new(broker, ctx);
    for topic in req.topics {
        let mut r = CreatePartitionsTopicResult::default();
        r.name = topic.name.clone();
        // ALTER on the topic, before its existence.
        if !authz.allows(
            gregor_security::acl::AclOperation::Alter,
            gregor_security::acl::ResourceType::Topic,
            &topic.name,
        ) {
            r.error_code = ResponseError::TopicAuthorizationFailed.code();
            r.error_message = None;
            resp.results.push(r);
            continue;
        }
        let assignments: Option<Vec<Vec<i32>>> = topic.assignments.as_ref().map(|a| {
            a.iter()
                .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
                .collect()
        });
        let name = topic.name.to_string();
        if !req.validate_only {
            let current = broker
                .metadata
                .image()
                .topic(&name)
                .map_or(0, |t| t.partitions.len());
            let permits = (topic.count.max(0) as usize).saturating_sub(current);
            // Strict from v3 (THROTTLING_QUOTA_EXCEEDED), as Kafka.
            let strict = ctx.api_version >= 3;
            if let Err(e) = quota_util::record_mutation(broker, ctx, permits, strict) {
                r.error_code = e.code();
                r.error_message = Some(str_bytes(quota_util::THROTTLED));
                resp.results.push(r);
                continue;
            }
        }
        let outcome = if req.validate_only {
            let image = broker.metadata.image();
            let brokers = broker.broker_ids_in(&image);
            Ok(controller::create_partitions(
                &image,
                &name,
                topic.count,
                assignments.as_deref(),
                &brokers,
            )
            .map(|_| ()))
        } else {
            broker
                .controller_update(|image| {
                    let brokers = broker.broker_ids_in(image);
                    controller::create_partitions(
                        image,
                        &name,
                        topic.count,
                        assignments.as_deref(),
                        &brokers,
                    )
                    .map(|recs| (recs, ()))
                })
                .await
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                r.error_code = util::controller_error(&e).code();
                r.error_message = Some(str_bytes(e.to_string()));
            }
            Err(e) => {
                r.error_code = ResponseError::UnknownServerError.code();
                r.error_message = Some(str_bytes(e.to_string()));
            }
        }
        resp.results.push(r);
    }
    resp.throttle_time_ms = quota_util::mutation_throttle(broker, ctx, 1);
    Some(resp)
}
