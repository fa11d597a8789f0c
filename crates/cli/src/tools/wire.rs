//! One request the client's `Admin` has no method for (the cluster-wide
//! broker default config resource, named "", ApiVersions' features,
//! DescribeQuorum, ...), sent over the client's own connection so that the
//! tool's `--command-config` (TLS, SASL) applies as to every other request.

use gregor_client::{Admin, ClientConfig};
use kafka_protocol::protocol::Request;

/// Sends `req` at `version` to the first reachable bootstrap server (or a
/// broker it names) and returns its response.
pub async fn request<R: Request>(
    config: &ClientConfig,
    version: i16,
    req: &R,
) -> anyhow::Result<R::Response> {
    let admin = Admin::new(config.clone())?;
    Ok(admin.send_request(req, version).await?)
}
