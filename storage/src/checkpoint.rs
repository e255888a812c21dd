//! Kafka's text checkpoint format, used for `leader-epoch-checkpoint`:
//! a version line (0), an entry-count line, then one `epoch start_offset` line per entry.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

pub fn encode(entries: &[EpochEntry]) -> Vec<u8> {
    let mut s = format!("0\n{}\n", entries.len());
    for e in entries {
        s.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
    }
    s.into_bytes()
}

pub fn decode(bytes: &[u8]) -> Option<Vec<EpochEntry>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let n: usize = lines.next()?.trim().parse().ok()?;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let mut parts = lines.next()?.split_whitespace();
        let epoch = parts.next()?.parse().ok()?;
        let start_offset = parts.next()?.parse().ok()?;
        out.push(EpochEntry {
            epoch,
            start_offset,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip() {
        let e = vec![
            EpochEntry {
                epoch: 0,
                start_offset: 0,
            },
            EpochEntry {
                epoch: 3,
                start_offset: 99,
            },
        ];
        assert_eq!(decode(&encode(&e)), Some(e));
        assert_eq!(decode(b"1\n0\n"), None);
    }
}
