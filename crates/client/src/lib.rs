pub mod admin;
pub mod cluster;
pub mod config;
mod conn;
pub mod consumer;
pub mod error;
mod group_ops;
mod offsets;
pub mod producer;
pub mod types;

pub use admin::Admin;
pub use config::ClientConfig;
pub use consumer::{Consumer, RebalanceListener};
pub use error::{Error, Result};
pub use producer::{DeliveryFuture, Producer};
pub use types::*;
