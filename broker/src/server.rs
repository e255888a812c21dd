//! Kafka connections on a shard: read frames, run requests concurrently (up to
//! `connection_inflight_max` per connection, as clients pipeline), write responses strictly
//! in request order.
//!
//! Lives on: the shard that accepted the connection (SO_REUSEPORT spreads connections).

use crate::handlers::{self, Outcome};
use crate::shard::ShardContext;
use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel;
use glommio::net::{TcpListener, TcpStream};
use sluice_protocol::frame;
use sluice_protocol::request::{parse_header, RequestError};
use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;
use tracing::{debug, info, warn, Instrument};

/// Bytes read from a socket per read call when no larger frame is expected.
const READ_CHUNK_BYTES: usize = 64 * 1024;

pub async fn accept_loop(ctx: Rc<ShardContext>, listener: TcpListener) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            while !ctx.shutting_down.get() {
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
            None
        })
        .await;
        let Some(accepted) = accepted else { break };
        match accepted {
            Ok(stream) => {
                let peer = stream
                    .peer_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let span = tracing::info_span!("conn", shard = ctx.id, %peer);
                debug!(shard = ctx.id, %peer, "accepted");
                glommio::spawn_local(serve_connection(ctx.clone(), stream).instrument(span))
                    .detach();
            }
            Err(e) => {
                warn!(shard = ctx.id, error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    info!(shard = ctx.id, "listener closed");
}

/// One half of a connection. Both halves borrow the stream only inside a poll call, never
/// across an await, so the `RefCell` cannot be contended.
struct Half(Rc<RefCell<TcpStream>>);

impl AsyncRead for Half {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for Half {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_close(cx)
    }
}

enum Slot {
    Request(glommio::Task<Result<Outcome, RequestError>>),
    /// Protocol error on the read side: close after the earlier responses are out.
    Close(String),
}

async fn serve_connection(ctx: Rc<ShardContext>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let stream = Rc::new(RefCell::new(stream));
    let (tx, rx) = local_channel::new_bounded::<Slot>(ctx.config.server.connection_inflight_max);
    let writer = glommio::spawn_local(write_responses(Half(stream.clone()), rx)).detach();
    read_requests(&ctx, Half(stream), tx).await;
    let _ = writer.await;
    debug!("connection closed");
}

async fn read_requests(
    ctx: &Rc<ShardContext>,
    mut reader: Half,
    tx: local_channel::LocalSender<Slot>,
) {
    let limit = ctx.config.server.socket_request_max_bytes;
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        // Hand every complete frame to a request task, in order.
        loop {
            match frame::frame_length(&buf, limit) {
                Ok(Some(n)) => {
                    let frame = buf.split_to(n).freeze().slice(frame::LENGTH_PREFIX_BYTES..);
                    let slot = match parse_header(frame) {
                        Ok(req) => {
                            let span = tracing::debug_span!("req", api = ?req.api_key, v = req.api_version, corr = req.correlation_id, client = req.client_id.as_deref().unwrap_or(""));
                            let ctx = ctx.clone();
                            Slot::Request(glommio::spawn_local(
                                async move { handlers::handle(&ctx, req).await }.instrument(span),
                            ))
                        }
                        Err(e) => Slot::Close(e.to_string()),
                    };
                    let closing = matches!(slot, Slot::Close(_));
                    if tx.send(slot).await.is_err() || closing {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Slot::Close(e.to_string())).await;
                    return;
                }
            }
        }
        // Read more: at least what the current frame still needs (already checked against
        // the limit), else a chunk.
        let want = match frame::announced_total(&buf, limit) {
            Ok(Some(total)) => total.saturating_sub(buf.len()).max(READ_CHUNK_BYTES),
            _ => READ_CHUNK_BYTES,
        };
        let old = buf.len();
        buf.resize(old + want, 0);
        match reader.read(&mut buf[old..]).await {
            Ok(0) => return,
            Err(e) => {
                debug!(error = %e, "read failed");
                return;
            }
            Ok(n) => buf.truncate(old + n),
        }
    }
}

async fn write_responses(mut writer: Half, rx: local_channel::LocalReceiver<Slot>) {
    while let Some(slot) = rx.recv().await {
        match slot {
            Slot::Request(task) => match task.await {
                Ok(Outcome::Respond(bytes)) => {
                    if let Err(e) = writer.write_all(&bytes).await {
                        debug!(error = %e, "write failed");
                        return;
                    }
                }
                Ok(Outcome::NoResponse) => {}
                Err(e) => {
                    warn!(error = %e, "closing connection");
                    let _ = writer.close().await;
                    return;
                }
            },
            Slot::Close(reason) => {
                warn!(%reason, "closing connection");
                let _ = writer.close().await;
                return;
            }
        }
    }
}
