//! Request headers in, response frames out.
//!
//! The header is parsed in two steps: the fixed 8 bytes (api key, version, correlation id)
//! first — enough to answer or refuse — then the rest by the header version the api key
//! and version imply. Bodies are decoded with the generated schemas, and only for versions
//! the schema knows.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Message};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RequestError {
    #[error("request shorter than its 8-byte header")]
    ShortHeader,
    #[error("unknown api key {api_key}")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error("{api:?} v{version} is not supported (supported: v{min}..=v{max})")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        min: i16,
        max: i16,
        correlation_id: i32,
    },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
        correlation_id: i32,
    },
}

/// A framed request whose header has been parsed; the body is still raw.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    pub body: Bytes,
}

/// Parses the header of a request frame (length prefix already removed).
pub fn parse_header(mut frame: Bytes) -> Result<RawRequest, RequestError> {
    if frame.len() < 8 {
        return Err(RequestError::ShortHeader);
    }
    let api_key_raw = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(api_key_raw).map_err(|_| RequestError::UnknownApiKey {
        api_key: api_key_raw,
        correlation_id,
    })?;
    // Versions beyond the schema's range get a header version guess; for ApiVersions the
    // caller must still be able to answer, so fall back to the v1 header for unknown versions.
    let range = api_key.valid_versions();
    let header_version = if api_version > range.max || api_version < range.min {
        if api_key == ApiKey::ApiVersions {
            1
        } else {
            return Err(RequestError::UnsupportedVersion {
                api: api_key,
                version: api_version,
                min: range.min,
                max: range.max,
                correlation_id,
            });
        }
    } else {
        api_key.request_header_version(api_version)
    };
    let header =
        RequestHeader::decode(&mut frame, header_version).map_err(|e| RequestError::Malformed {
            api: api_key,
            version: api_version,
            reason: e.to_string(),
            correlation_id,
        })?;
    Ok(RawRequest {
        api_key,
        api_version,
        correlation_id,
        client_id: header.client_id.map(|s| s.to_string()),
        body: frame,
    })
}

impl RawRequest {
    /// Decodes the body as `T` at this request's version. Trailing bytes are tolerated, as
    /// Apache Kafka tolerates them (librdkafka 2.x sends a few after some Metadata v12
    /// requests); everything the schema defines must be present and well-formed.
    pub fn decode<T: Decodable + Message>(&self) -> Result<T, RequestError> {
        let mut body = self.body.clone();
        let v = self.api_version;
        if v < T::VERSIONS.min || v > T::VERSIONS.max {
            return Err(RequestError::UnsupportedVersion {
                api: self.api_key,
                version: v,
                min: T::VERSIONS.min,
                max: T::VERSIONS.max,
                correlation_id: self.correlation_id,
            });
        }
        T::decode(&mut body, v).map_err(|e| self.malformed(e.to_string()))
    }

    fn malformed(&self, reason: String) -> RequestError {
        RequestError::Malformed {
            api: self.api_key,
            version: self.api_version,
            reason,
            correlation_id: self.correlation_id,
        }
    }
}

#[derive(Debug, Error)]
#[error("cannot encode {api:?} v{version} response: {reason}")]
pub struct EncodeError {
    pub api: ApiKey,
    pub version: i16,
    pub reason: String,
}

/// The response header version: v0, or v1 for flexible versions — except ApiVersions,
/// always v0 so that a client can read the answer whatever version it asked for.
fn response_header_version(api: ApiKey, version: i16) -> i16 {
    if api == ApiKey::ApiVersions {
        0
    } else {
        api.response_header_version(version)
    }
}

/// Encodes a whole response frame: length prefix, header (v0, or v1 for flexible versions —
/// ApiVersions always uses v0 so that any client can read it), body.
pub fn encode_response<T: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<Bytes, EncodeError> {
    let err = |e: anyhow_like::AnyErr| EncodeError {
        api,
        version,
        reason: e.0,
    };
    let header_version = response_header_version(api, version);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let header_size = header
        .compute_size(header_version)
        .map_err(|e| err(e.into()))?;
    let body_size = body.compute_size(version).map_err(|e| err(e.into()))?;
    let mut out = BytesMut::with_capacity(4 + header_size + body_size);
    out.put_i32((header_size + body_size) as i32);
    header
        .encode(&mut out, header_version)
        .map_err(|e| err(e.into()))?;
    body.encode(&mut out, version).map_err(|e| err(e.into()))?;
    Ok(out.freeze())
}

/// Encodes a request frame (used by Sluice's own clients: the benchmark driver and tests).
pub fn encode_request<T: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &T,
) -> Result<Bytes, EncodeError> {
    let err = |e: anyhow_like::AnyErr| EncodeError {
        api,
        version,
        reason: e.0,
    };
    let header_version = api.request_header_version(version);
    let mut header = RequestHeader::default();
    header.request_api_key = api as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(kafka_protocol::protocol::StrBytes::from_string(
        client_id.to_string(),
    ));
    let header_size = header
        .compute_size(header_version)
        .map_err(|e| err(e.into()))?;
    let body_size = body.compute_size(version).map_err(|e| err(e.into()))?;
    let mut out = BytesMut::with_capacity(4 + header_size + body_size);
    out.put_i32((header_size + body_size) as i32);
    header
        .encode(&mut out, header_version)
        .map_err(|e| err(e.into()))?;
    body.encode(&mut out, version).map_err(|e| err(e.into()))?;
    Ok(out.freeze())
}

/// Decodes a response frame body (length prefix removed) for Sluice's own clients.
pub fn decode_response<T: Decodable>(
    api: ApiKey,
    version: i16,
    mut frame: Bytes,
) -> Result<(i32, T), EncodeError> {
    let err = |e: anyhow_like::AnyErr| EncodeError {
        api,
        version,
        reason: e.0,
    };
    let header_version = response_header_version(api, version);
    let header = ResponseHeader::decode(&mut frame, header_version).map_err(|e| err(e.into()))?;
    let body = T::decode(&mut frame, version).map_err(|e| err(e.into()))?;
    Ok((header.correlation_id, body))
}

mod anyhow_like {
    /// The schema crate reports errors as `anyhow::Error`; we keep only the text so that
    /// `anyhow` stays out of this library's public API.
    pub struct AnyErr(pub String);
    impl<E: std::fmt::Display> From<E> for AnyErr {
        fn from(e: E) -> Self {
            AnyErr(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};

    #[test]
    fn header_roundtrip_flexible_and_not() {
        for (api, v) in [
            (ApiKey::Metadata, 1),
            (ApiKey::Metadata, 12),
            (ApiKey::ApiVersions, 3),
        ] {
            let frame = if api == ApiKey::Metadata {
                encode_request(api, v, 77, "cid", &MetadataRequest::default()).unwrap()
            } else {
                encode_request(api, v, 77, "cid", &ApiVersionsRequest::default()).unwrap()
            };
            let raw = parse_header(frame.slice(4..)).unwrap();
            assert_eq!(raw.api_key, api);
            assert_eq!(raw.api_version, v);
            assert_eq!(raw.correlation_id, 77);
            assert_eq!(raw.client_id.as_deref(), Some("cid"));
        }
    }

    #[test]
    fn unknown_key_reports_correlation() {
        let frame = Bytes::from_static(&[0x7f, 0x00, 0, 1, 0, 0, 0, 9, 0, 0]);
        match parse_header(frame) {
            Err(RequestError::UnknownApiKey {
                correlation_id: 9, ..
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn huge_array_claim_is_an_error_not_an_abort() {
        // Metadata v1: topics array claiming 2^31-1 entries in a 4-byte body.
        let mut frame = BytesMut::new();
        frame.put_i16(ApiKey::Metadata as i16);
        frame.put_i16(1);
        frame.put_i32(1);
        frame.put_i16(-1); // null client id
        frame.put_i32(i32::MAX);
        let raw = parse_header(frame.freeze()).unwrap();
        assert!(raw.decode::<MetadataRequest>().is_err());
    }
}
