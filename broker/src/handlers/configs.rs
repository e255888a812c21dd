//! DescribeConfigs v0–v4, AlterConfigs v0–v2, IncrementalAlterConfigs v0–v1.
//! Topic configs are dynamic (stored in the metadata service, applied on every shard);
//! broker configs come from the config file and are read-only here.

use super::{respond, sb, Outcome};
use crate::config::describe_topic_config;
use crate::errors;
use crate::shard::{MetaMsg, ShardContext};
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use sluice_protocol::request::{RawRequest, RequestError};
use std::rc::Rc;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const TYPE_STRING: i8 = 2;
const TYPE_LONG: i8 = 5;

fn entry(
    version: i16,
    name: &str,
    value: String,
    is_default: bool,
    source: i8,
    read_only: bool,
) -> DescribeConfigsResourceResult {
    let mut c = DescribeConfigsResourceResult::default();
    c.name = sb(name.to_string());
    c.config_type = if value.parse::<i64>().is_ok() {
        TYPE_LONG
    } else {
        TYPE_STRING
    };
    c.value = Some(sb(value));
    if version == 0 {
        c.is_default = is_default; // v0 only; later versions use config_source
    }
    c.config_source = source;
    c.read_only = read_only;
    c
}

pub async fn describe(ctx: &Rc<ShardContext>, req: &RawRequest) -> Result<Outcome, RequestError> {
    let body: DescribeConfigsRequest = req.decode()?;
    let snap = ctx.snapshot();
    let mut resp = DescribeConfigsResponse::default();
    for r in &body.resources {
        let mut out = DescribeConfigsResult::default();
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name.clone();
        let wanted = |k: &str| {
            r.configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.is_empty() || keys.iter().any(|x| x.as_str() == k))
        };
        match r.resource_type {
            RESOURCE_TOPIC => match snap.topics.get(r.resource_name.as_str()) {
                None => {
                    out.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION;
                    out.error_message =
                        Some(sb(format!("unknown topic {:?}", r.resource_name.as_str())));
                }
                Some(m) => {
                    for (k, v, is_default) in describe_topic_config(&ctx.log_defaults, &m.configs) {
                        if wanted(k) {
                            out.configs.push(entry(
                                req.api_version,
                                k,
                                v,
                                is_default,
                                if is_default {
                                    SOURCE_DEFAULT
                                } else {
                                    SOURCE_DYNAMIC_TOPIC
                                },
                                false,
                            ));
                        }
                    }
                }
            },
            RESOURCE_BROKER => {
                let l = &ctx.config.log;
                let s = &ctx.config.server;
                let items: Vec<(&str, String)> = vec![
                    ("broker.id", s.node_id.to_string()),
                    ("log.dirs", s.data_dir.display().to_string()),
                    ("log.segment.bytes", l.segment_bytes.to_string()),
                    ("log.roll.ms", l.segment_ms.to_string()),
                    ("log.retention.ms", l.retention_ms.to_string()),
                    ("log.retention.bytes", l.retention_bytes.to_string()),
                    ("message.max.bytes", l.max_message_bytes.to_string()),
                    (
                        "log.index.interval.bytes",
                        l.index_interval_bytes.to_string(),
                    ),
                    (
                        "log.message.timestamp.type",
                        l.message_timestamp_type.clone(),
                    ),
                    ("num.partitions", s.default_partitions.to_string()),
                    (
                        "auto.create.topics.enable",
                        s.auto_create_topics.to_string(),
                    ),
                    (
                        "socket.request.max.bytes",
                        s.socket_request_max_bytes.to_string(),
                    ),
                    ("default.replication.factor", "1".into()),
                    ("min.insync.replicas", "1".into()),
                ];
                for (k, v) in items {
                    if wanted(k) {
                        out.configs.push(entry(
                            req.api_version,
                            k,
                            v,
                            false,
                            SOURCE_STATIC_BROKER,
                            true,
                        ));
                    }
                }
            }
            other => {
                out.error_code = errors::INVALID_REQUEST;
                out.error_message = Some(sb(format!("resource type {other} is not supported")));
            }
        }
        resp.results.push(out);
    }
    respond(req, &resp)
}

async fn alter_topic(
    ctx: &Rc<ShardContext>,
    topic: String,
    ops: Vec<(String, Option<String>)>,
    incremental: bool,
    validate_only: bool,
) -> (i16, Option<String>) {
    let msg = |reply| MetaMsg::AlterConfigs {
        topic,
        ops,
        incremental,
        validate_only,
        reply,
    };
    match ctx.ask_meta(msg).await {
        Some(Ok(())) => (errors::NONE, None),
        Some(Err(e)) => (e.code, Some(e.message)),
        None => (
            errors::KAFKA_STORAGE_ERROR,
            Some("metadata service unavailable".into()),
        ),
    }
}

fn broker_read_only() -> (i16, Option<String>) {
    (
        errors::INVALID_REQUEST,
        Some("broker configs are static in Sluice: edit the config file and restart".into()),
    )
}

pub async fn alter(ctx: &Rc<ShardContext>, req: &RawRequest) -> Result<Outcome, RequestError> {
    let body: AlterConfigsRequest = req.decode()?;
    let mut resp = AlterConfigsResponse::default();
    for r in &body.resources {
        let (code, msg) = match r.resource_type {
            RESOURCE_TOPIC => {
                let ops = r
                    .configs
                    .iter()
                    .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                    .collect();
                alter_topic(
                    ctx,
                    r.resource_name.to_string(),
                    ops,
                    false,
                    body.validate_only,
                )
                .await
            }
            RESOURCE_BROKER => broker_read_only(),
            _ => (
                errors::INVALID_REQUEST,
                Some("unsupported resource type".into()),
            ),
        };
        let mut out =
            kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse::default(
            );
        out.error_code = code;
        out.error_message = msg.map(sb);
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name.clone();
        resp.responses.push(out);
    }
    respond(req, &resp)
}

pub async fn incremental_alter(
    ctx: &Rc<ShardContext>,
    req: &RawRequest,
) -> Result<Outcome, RequestError> {
    let body: IncrementalAlterConfigsRequest = req.decode()?;
    let mut resp = IncrementalAlterConfigsResponse::default();
    for r in &body.resources {
        let (code, msg) = match r.resource_type {
            RESOURCE_TOPIC => {
                let mut ops = Vec::new();
                let mut bad = None;
                for c in &r.configs {
                    match c.config_operation {
                        0 => ops.push((
                            c.name.to_string(),
                            Some(c.value.as_ref().map(|v| v.to_string()).unwrap_or_default()),
                        )),
                        1 => ops.push((c.name.to_string(), None)),
                        op => {
                            bad = Some(format!(
                            "{}: operation {op} (APPEND/SUBTRACT) is not supported for this key",
                            c.name.as_str()
                        ))
                        }
                    }
                }
                match bad {
                    Some(m) => (errors::INVALID_CONFIG, Some(m)),
                    None => {
                        alter_topic(
                            ctx,
                            r.resource_name.to_string(),
                            ops,
                            true,
                            body.validate_only,
                        )
                        .await
                    }
                }
            }
            RESOURCE_BROKER => broker_read_only(),
            _ => (
                errors::INVALID_REQUEST,
                Some("unsupported resource type".into()),
            ),
        };
        let mut out = kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse::default();
        out.error_code = code;
        out.error_message = msg.map(sb);
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name.clone();
        resp.responses.push(out);
    }
    respond(req, &resp)
}
