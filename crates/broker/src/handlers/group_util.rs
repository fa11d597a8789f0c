//! Shared bits of the group handlers.

use crate::group_runtime::GroupError;

pub fn log_failure(api: &str, error: Option<GroupError>) {
    match error {
        Some(e) => tracing::warn!(api, error = %e, "group coordinator unavailable"),
        None => tracing::error!(
            api,
            "group coordinator answered with the wrong response type"
        ),
    }
}
