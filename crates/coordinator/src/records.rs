//! Kafka's record formats in `__consumer_offsets` (big-endian, non-flexible
//! versions as Kafka 3.x/4.x writes them; tagged-field versions on read).
//! TODO(coordinator helper): OffsetCommitKey v1, OffsetCommitValue v3 (v0-4 read),
//! GroupMetadataKey v2, GroupMetadataValue v3 (v0-4 read).
