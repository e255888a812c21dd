//! One glommio TCP connection shared by a writer task and a reader task.

use anyhow::{bail, Result};
use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite};
use glommio::net::TcpStream;
use sluice_protocol::frame;
use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

const READ_CHUNK_BYTES: usize = 256 * 1024;

/// One half of a connection. Both halves borrow the stream only inside a poll call, never
/// across an await, so the `RefCell` is never contended (the broker's server does the same).
/// Lives on: the executor that opened the connection.
pub struct Half(Rc<RefCell<TcpStream>>);

impl AsyncRead for Half {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for Half {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_close(cx)
    }
}

pub async fn connect(addr: &str) -> Result<(Half, Half)> {
    let stream = TcpStream::connect_timeout(addr, Duration::from_secs(5))
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let s = Rc::new(RefCell::new(stream));
    Ok((Half(s.clone()), Half(s)))
}

/// Reads length-prefixed response frames.
pub struct FrameReader {
    half: Half,
    buf: BytesMut,
    chunk: Vec<u8>,
}

impl FrameReader {
    pub fn new(half: Half) -> FrameReader {
        FrameReader {
            half,
            buf: BytesMut::with_capacity(READ_CHUNK_BYTES),
            chunk: vec![0; READ_CHUNK_BYTES],
        }
    }

    /// The next frame without its length prefix; an error when the peer closed.
    pub async fn next(&mut self) -> Result<Bytes> {
        loop {
            match frame::frame_length(&self.buf, RESPONSE_LIMIT) {
                Ok(Some(n)) => {
                    return Ok(self
                        .buf
                        .split_to(n)
                        .freeze()
                        .slice(frame::LENGTH_PREFIX_BYTES..));
                }
                Ok(None) => {}
                Err(e) => bail!("bad response frame: {e}"),
            }
            // Read into a buffer zeroed once, then copy what arrived: cheaper than zeroing
            // fresh space before every read.
            let n = match self.half.read(&mut self.chunk).await {
                Ok(0) => bail!("the broker closed the connection"),
                Ok(n) => n,
                Err(e) => bail!("read failed: {e}"),
            };
            self.buf.extend_from_slice(&self.chunk[..n]);
        }
    }
}

const RESPONSE_LIMIT: usize = crate::kafka::RESPONSE_BYTES_MAX;
