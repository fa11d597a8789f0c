//! The response enums a shard's [`crate::Output`] carries, and their typed
//! views.
//!
//! A shard completes requests by id, often for a request of an earlier call
//! (a parked JoinGroup or SyncGroup), so its output holds responses of
//! several APIs side by side: one enum per coordinator is the transport.
//! Callers never see it: the runtime converts a request's answer back to the
//! API's own response type with the `TryFrom` impls `response_enum!`
//! generates, so a handler reads `let r: JoinGroupResponse = ...call(..)`.

/// A shard's response enum: one variant per API, each holding that API's
/// response type (see `response_enum!`).
pub trait ResponseEnum {
    /// The variant's name, for the log line of a response that did not
    /// match its request (a coordinator bug).
    fn api(&self) -> &'static str;
}

/// Declares a response enum with one tuple variant per API and, for each
/// variant, `From<ApiResponse> for Enum`, `TryFrom<Enum> for ApiResponse`
/// (the error gives the enum back) and [`ResponseEnum`]. Every variant's type
/// must be distinct.
macro_rules! response_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident($ty:ty)),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$vmeta])* $variant($ty),)+
        }

        impl $crate::response::ResponseEnum for $name {
            fn api(&self) -> &'static str {
                match self {
                    $($name::$variant(_) => stringify!($variant),)+
                }
            }
        }

        $(
            impl From<$ty> for $name {
                fn from(r: $ty) -> Self {
                    $name::$variant(r)
                }
            }

            impl TryFrom<$name> for $ty {
                type Error = $name;
                fn try_from(r: $name) -> Result<Self, $name> {
                    match r {
                        $name::$variant(r) => Ok(r),
                        #[allow(unreachable_patterns)]
                        other => Err(other),
                    }
                }
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    use super::ResponseEnum;
    use crate::txn::TxnResponse;
    use crate::Response;
    use kafka_protocol::messages::{EndTxnResponse, HeartbeatResponse, JoinGroupResponse};

    #[test]
    fn a_response_converts_back_to_its_own_type_only() {
        let mut hb = HeartbeatResponse::default();
        hb.error_code = 27;
        let r = Response::from(hb.clone());
        assert_eq!(r.api(), "Heartbeat");
        assert_eq!(HeartbeatResponse::try_from(r.clone()).ok(), Some(hb));
        // The wrong type gives the response back, for the runtime to log.
        let back = JoinGroupResponse::try_from(r).unwrap_err();
        assert_eq!(back.api(), "Heartbeat");
    }

    #[test]
    fn transaction_responses_convert_the_same_way() {
        let r = TxnResponse::from(EndTxnResponse::default());
        assert_eq!(r.api(), "EndTxn");
        assert!(EndTxnResponse::try_from(r).is_ok());
    }
}
