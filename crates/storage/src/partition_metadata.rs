//! `partition.metadata`, Kafka's per-partition record of the topic id:
//!
//! ```text
//! version: 0
//! topic_id: <Uuid as URL-safe base64 without padding, 22 chars>
//! ```
//!
//! Kafka refuses to load a partition whose recorded topic id differs from the
//! metadata's (a deleted-and-recreated topic); the broker makes that check
//! with [`crate::Log::topic_id`].

use std::fs;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

pub const PARTITION_METADATA_FILE: &str = "partition.metadata";

pub(crate) fn read_partition_metadata(path: &Path) -> Option<[u8; 16]> {
    let text = fs::read_to_string(path).ok()?;
    let mut version_ok = false;
    let mut id = None;
    for line in text.lines() {
        let (k, v) = line.split_once(':')?;
        match k.trim() {
            "version" => version_ok = v.trim() == "0",
            "topic_id" => id = base64url_decode(v.trim()),
            _ => {}
        }
    }
    if !version_ok {
        tracing::warn!(path = %path.display(), "ignoring partition.metadata of unknown version");
        return None;
    }
    id
}

/// Kafka's `Uuid.toString`: URL-safe base64 without padding (22 chars).
pub fn base64url_encode(id: &[u8; 16]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

/// The inverse of [`base64url_encode`]; `None` unless `s` is exactly 16
/// bytes' worth (trailing `=` padding is tolerated).
pub fn base64url_decode(s: &str) -> Option<[u8; 16]> {
    let s = s.trim_end_matches('=');
    if s.len() != 22 {
        return None;
    }
    URL_SAFE_NO_PAD.decode(s).ok()?.try_into().ok()
}

/// The file's contents for `id`.
pub fn render(id: &[u8; 16]) -> String {
    format!("version: 0\ntopic_id: {}\n", base64url_encode(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trip() {
        for id in [[0u8; 16], [255u8; 16], *b"0123456789abcdef"] {
            let s = base64url_encode(&id);
            assert_eq!(s.len(), 22);
            assert_eq!(base64url_decode(&s), Some(id));
        }
        // Kafka's Uuid.toString of 0x0000...0001
        let mut one = [0u8; 16];
        one[15] = 1;
        assert_eq!(base64url_encode(&one), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert_eq!(base64url_decode("too-short"), None);
        assert_eq!(base64url_decode("AAAAAAAAAAAAAAAAAAAA*Q"), None);
    }

    #[test]
    fn unreadable_files_give_none() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(PARTITION_METADATA_FILE);
        assert_eq!(read_partition_metadata(&p), None);
        fs::write(&p, "garbage").unwrap();
        assert_eq!(read_partition_metadata(&p), None);
        fs::write(&p, "version: 1\ntopic_id: AAAAAAAAAAAAAAAAAAAAAQ\n").unwrap();
        assert_eq!(read_partition_metadata(&p), None);
        fs::write(&p, "version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAQ\n").unwrap();
        assert!(read_partition_metadata(&p).is_some());
    }
}
