//! The classic consumer-group coordinator and committed offsets.
//!
//! A group lives on the home shard of its `__consumer_offsets` partition (Kafka's rule:
//! `abs(java_hash(group)) % partitions`), so groups spread over cores. Everything about a
//! group — members, generation, assignments, committed offsets — is shard-local state in
//! [`Coordinator`]; commits and group metadata are appended to that partition (Kafka's
//! record formats, see [`records`]) and replayed from it at startup.

pub mod coordinator;
pub mod records;

pub use coordinator::OFFSETS_TOPIC;

/// Java's `String.hashCode`, over UTF-16 code units, as Kafka uses for partitioning groups.
pub fn java_string_hash(s: &str) -> i32 {
    let mut h: i32 = 0;
    for unit in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    h
}

/// The `__consumer_offsets` partition holding `group`.
pub fn offsets_partition(group: &str, partitions: i32) -> i32 {
    (java_string_hash(group) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn matches_java_hash_code() {
        // "hello".hashCode() == 99162322 in Java; "" == 0.
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash(""), 0);
        assert!((0..50).contains(&offsets_partition("any-group-name-at-all", 50)));
    }
}
