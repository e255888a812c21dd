//! Kafka's `__consumer_offsets` record formats, so the internal topic is readable by Kafka's
//! own tooling: offset commits (key v1, value v3) and group metadata (key v2, value v3).
//! A record with a null value is a tombstone (offset or group deleted).

use bytes::{Buf, BufMut, Bytes, BytesMut};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        None => b.put_i16(-1),
        Some(s) => put_str(b, s),
    }
}

fn get_str(b: &mut Bytes) -> Option<Option<String>> {
    if b.remaining() < 2 {
        return None;
    }
    let n = b.get_i16();
    if n < 0 {
        return Some(None);
    }
    if b.remaining() < n as usize {
        return None;
    }
    let s = b.split_to(n as usize);
    Some(Some(String::from_utf8_lossy(&s).into_owned()))
}

impl Key {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = BytesMut::new();
        match self {
            Key::Offset {
                group,
                topic,
                partition,
            } => {
                b.put_i16(1);
                put_str(&mut b, group);
                put_str(&mut b, topic);
                b.put_i32(*partition);
            }
            Key::Group { group } => {
                b.put_i16(2);
                put_str(&mut b, group);
            }
        }
        b.to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Option<Key> {
        let mut b = Bytes::copy_from_slice(bytes);
        if b.remaining() < 2 {
            return None;
        }
        match b.get_i16() {
            0 | 1 => {
                let group = get_str(&mut b)??;
                let topic = get_str(&mut b)??;
                if b.remaining() < 4 {
                    return None;
                }
                Some(Key::Offset {
                    group,
                    topic,
                    partition: b.get_i32(),
                })
            }
            2 => Some(Key::Group {
                group: get_str(&mut b)??,
            }),
            _ => None,
        }
    }
}

impl OffsetValue {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_i16(3);
        b.put_i64(self.offset);
        b.put_i32(self.leader_epoch);
        put_str(&mut b, &self.metadata);
        b.put_i64(self.commit_timestamp_ms);
        b.to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Option<OffsetValue> {
        let mut b = Bytes::copy_from_slice(bytes);
        if b.remaining() < 10 {
            return None;
        }
        let version = b.get_i16();
        let offset = b.get_i64();
        let leader_epoch = if version >= 3 && b.remaining() >= 4 {
            b.get_i32()
        } else {
            -1
        };
        let metadata = get_str(&mut b)?.unwrap_or_default();
        let commit_timestamp_ms = if b.remaining() >= 8 { b.get_i64() } else { 0 };
        Some(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
        })
    }
}

impl GroupValue {
    /// Members are not persisted: after a restart they rejoin (their sessions are gone).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_i16(3);
        put_str(&mut b, &self.protocol_type);
        b.put_i32(self.generation);
        put_nullable_str(&mut b, self.protocol.as_deref());
        put_nullable_str(&mut b, self.leader.as_deref());
        b.put_i64(self.state_timestamp_ms);
        b.put_i32(0);
        b.to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Option<GroupValue> {
        let mut b = Bytes::copy_from_slice(bytes);
        if b.remaining() < 2 {
            return None;
        }
        let version = b.get_i16();
        let protocol_type = get_str(&mut b)?.unwrap_or_default();
        if b.remaining() < 4 {
            return None;
        }
        let generation = b.get_i32();
        let protocol = get_str(&mut b)?;
        let leader = get_str(&mut b)?;
        let state_timestamp_ms = if version >= 2 && b.remaining() >= 8 {
            b.get_i64()
        } else {
            -1
        };
        Some(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            state_timestamp_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrips() {
        let k = Key::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        assert_eq!(Key::decode(&k.encode()), Some(k));
        let k = Key::Group { group: "g".into() };
        assert_eq!(Key::decode(&k.encode()), Some(k));
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 0,
            metadata: "m".into(),
            commit_timestamp_ms: 7,
        };
        assert_eq!(OffsetValue::decode(&v.encode()), Some(v));
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: None,
            state_timestamp_ms: 9,
        };
        assert_eq!(GroupValue::decode(&g.encode()), Some(g));
        assert_eq!(Key::decode(&[0, 9]), None);
    }
}
