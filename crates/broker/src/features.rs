//! Cluster features (KIP-584): the ones this broker supports, with their
//! level ranges, and the levels a new cluster starts at. The finalized
//! levels live in the metadata image (`FeatureLevel` records); ApiVersions
//! reports both, UpdateFeatures changes the finalized ones.

/// Kafka's `transaction.version`: 0 classic transactions, 1 flexible
/// `__transaction_state` values, 2 transactions v2 (KIP-890 part 2: the
/// client adds no partitions itself, every transaction bumps the epoch).
pub const TRANSACTION_VERSION: &str = "transaction.version";

/// (name, min level, max level) of every feature this broker supports.
pub const SUPPORTED: &[(&str, i16, i16)] = &[(TRANSACTION_VERSION, 0, 2)];

/// The levels a newly formed cluster finalizes.
pub const BOOTSTRAP_LEVELS: &[(&str, i16)] = &[(TRANSACTION_VERSION, 2)];

/// The supported range of feature `name`, if it is one.
pub fn supported(name: &str) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, min, max)| (min, max))
}
