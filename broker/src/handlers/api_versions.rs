//! ApiVersions v0–v4. A version we do not know gets the v0-format reply with
//! UNSUPPORTED_VERSION and our ranges, so a newer client can retry with one we have.

use super::{respond, Outcome, SUPPORTED};
use crate::errors;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use sluice_protocol::request::{encode_response, RawRequest, RequestError};

pub fn handle(req: &RawRequest) -> Result<Outcome, RequestError> {
    let mut resp = ApiVersionsResponse::default();
    resp.api_keys = SUPPORTED
        .iter()
        .filter_map(|&(k, _, _)| {
            let (lo, hi) = super::supported_range(k)?;
            let mut v = ApiVersion::default();
            v.api_key = k as i16;
            v.min_version = lo;
            v.max_version = hi;
            Some(v)
        })
        .collect();
    let (lo, hi) = super::supported_range(ApiKey::ApiVersions).expect("listed");
    if !(lo..=hi).contains(&req.api_version) {
        resp.error_code = errors::UNSUPPORTED_VERSION;
        return encode_response(ApiKey::ApiVersions, 0, req.correlation_id, &resp)
            .map(Outcome::Respond)
            .map_err(|e| RequestError::Malformed {
                api: req.api_key,
                version: 0,
                reason: e.to_string(),
                correlation_id: req.correlation_id,
            });
    }
    // The body is not needed (client software name/version are informational); a v3+
    // body that does not decode is still answered, as Kafka does with INVALID_REQUEST.
    if req.api_version >= 3
        && req
            .decode::<kafka_protocol::messages::ApiVersionsRequest>()
            .is_err()
    {
        resp.error_code = errors::INVALID_REQUEST;
    }
    respond(req, &resp)
}
