//! InitProducerId v0–v5 for idempotent producers. A producer that asks again with its
//! current id and epoch (v3+, after an error) keeps its id with the epoch bumped.
//! Transactional ids are refused: transactions are not implemented.

use super::{respond, Outcome};
use crate::errors;
use crate::shard::{MetaMsg, ShardContext};
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use sluice_protocol::request::{RawRequest, RequestError};
use std::rc::Rc;

pub async fn handle(ctx: &Rc<ShardContext>, req: &RawRequest) -> Result<Outcome, RequestError> {
    let body: InitProducerIdRequest = req.decode()?;
    let mut resp = InitProducerIdResponse::default();
    if body
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty())
    {
        resp.error_code = errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        resp.producer_id = ProducerId(-1);
        resp.producer_epoch = -1;
        return respond(req, &resp);
    }
    if body.producer_id.0 >= 0 && body.producer_epoch >= 0 && body.producer_epoch < i16::MAX - 1 {
        resp.producer_id = body.producer_id;
        resp.producer_epoch = body.producer_epoch + 1;
        return respond(req, &resp);
    }
    match ctx
        .ask_meta(|reply| MetaMsg::AllocateProducerId { reply })
        .await
    {
        Some(Ok(id)) => {
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
        }
        Some(Err(e)) => {
            resp.error_code = e.code;
            resp.producer_id = ProducerId(-1);
            resp.producer_epoch = -1;
        }
        None => {
            resp.error_code = errors::COORDINATOR_NOT_AVAILABLE;
            resp.producer_id = ProducerId(-1);
            resp.producer_epoch = -1;
        }
    }
    respond(req, &resp)
}
