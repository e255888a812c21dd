//! DescribeCluster v0–v1: one broker, which is also the controller.

use super::{respond, sb, Outcome};
use crate::shard::ShardContext;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use sluice_protocol::request::{RawRequest, RequestError};
use std::rc::Rc;

pub async fn handle(ctx: &Rc<ShardContext>, req: &RawRequest) -> Result<Outcome, RequestError> {
    let body: DescribeClusterRequest = req.decode()?;
    let node = ctx.config.server.node_id;
    let (host, port) = ctx.config.advertised();
    let mut resp = DescribeClusterResponse::default();
    resp.endpoint_type = body.endpoint_type;
    resp.cluster_id = sb(ctx.snapshot().cluster_id.clone());
    resp.controller_id = BrokerId(node);
    let mut b = DescribeClusterBroker::default();
    b.broker_id = BrokerId(node);
    b.host = sb(host);
    b.port = port;
    resp.brokers = vec![b];
    resp.cluster_authorized_operations = i32::MIN;
    respond(req, &resp)
}
