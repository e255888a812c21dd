//! The metadata service: owns the [`MetadataStore`] on its own executor, serializes every
//! change, persists it, and broadcasts the new snapshot to all shards, answering the client
//! only when every shard has applied it.

use crate::metadata::MetadataStore;
use crate::shard::{MetaMsg, ShardMsg};
use futures_channel::oneshot;
use glommio::channels::local_channel;
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

/// Lives on: the metadata executor.
pub struct MetaService {
    store: std::cell::RefCell<MetadataStore>,
    shards: Vec<ConnectedSender<ShardMsg>>,
}

impl MetaService {
    pub fn new(store: MetadataStore, shards: Vec<ConnectedSender<ShardMsg>>) -> Rc<Self> {
        Rc::new(MetaService {
            store: std::cell::RefCell::new(store),
            shards,
        })
    }

    pub async fn broadcast(&self) {
        let snap = self.store.borrow().snapshot();
        let mut acks = Vec::new();
        for s in &self.shards {
            let (tx, rx) = oneshot::channel();
            let _ = s
                .send(ShardMsg::ApplyMetadata {
                    snapshot: snap.clone(),
                    reply: tx,
                })
                .await;
            acks.push(rx);
        }
        for a in acks {
            let _ = a.await;
        }
    }

    async fn handle(&self, msg: MetaMsg) {
        match msg {
            MetaMsg::CreateTopics {
                topics,
                validate_only,
                reply,
            } => {
                let results: Vec<_> = topics
                    .into_iter()
                    .map(|t| {
                        self.store.borrow_mut().create_topic(
                            &t.name,
                            t.partitions,
                            t.replication,
                            t.configs,
                            validate_only,
                        )
                    })
                    .collect();
                if results.iter().any(|r| r.is_ok()) && !validate_only {
                    self.broadcast().await;
                }
                let _ = reply.send(results);
            }
            MetaMsg::DeleteTopics { names, reply } => {
                let results: Vec<_> = names
                    .iter()
                    .map(|n| self.store.borrow_mut().delete_topic(n).map(|_| ()))
                    .collect();
                if results.iter().any(|r| r.is_ok()) {
                    self.broadcast().await;
                }
                let _ = reply.send(results);
            }
            MetaMsg::CreatePartitions {
                items,
                validate_only,
                reply,
            } => {
                let results: Vec<_> = items
                    .iter()
                    .map(|(n, c)| {
                        self.store
                            .borrow_mut()
                            .create_partitions(n, *c, validate_only)
                    })
                    .collect();
                if results.iter().any(|r| r.is_ok()) && !validate_only {
                    self.broadcast().await;
                }
                let _ = reply.send(results);
            }
            MetaMsg::AlterConfigs {
                topic,
                ops,
                incremental,
                validate_only,
                reply,
            } => {
                let r =
                    self.store
                        .borrow_mut()
                        .alter_configs(&topic, &ops, incremental, validate_only);
                if r.is_ok() && !validate_only {
                    self.broadcast().await;
                }
                let _ = reply.send(r);
            }
            MetaMsg::AllocateProducerId { reply } => {
                let _ = reply.send(self.store.borrow_mut().allocate_producer_id());
            }
        }
    }

    /// Serves requests from every shard, one at a time, until shutdown.
    pub async fn run(
        self: Rc<Self>,
        inputs: Vec<ConnectedReceiver<MetaMsg>>,
        shutdown: Arc<AtomicBool>,
    ) {
        let (tx, rx) = local_channel::new_bounded::<MetaMsg>(1024);
        let tx = Rc::new(tx);
        for input in inputs {
            let tx = tx.clone();
            glommio::spawn_local(async move {
                while let Some(m) = input.recv().await {
                    if tx.send(m).await.is_err() {
                        break;
                    }
                }
            })
            .detach();
        }
        self.broadcast().await;
        info!("metadata service ready");
        loop {
            let next = futures_lite::future::or(async { rx.recv().await }, async {
                while !shutdown.load(Ordering::Relaxed) {
                    glommio::timer::sleep(Duration::from_millis(50)).await;
                }
                None
            })
            .await;
            match next {
                Some(m) => self.handle(m).await,
                None => break,
            }
        }
    }
}
