//! Test support: start the real `sluice` binary on a free port with a temporary data
//! directory, and talk to it over TCP with a tiny blocking Kafka client built on
//! `sluice-protocol`.

#![allow(dead_code)]

use bytes::{Buf, Bytes};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    pub child: Option<Child>,
    pub port: u16,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    extra: Vec<String>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Broker {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Broker {
        let mut b = Broker {
            child: None,
            port: free_port(),
            data_dir: data_dir.to_path_buf(),
            log_path: data_dir.with_extension("log"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let addr = format!("127.0.0.1:{}", self.port);
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--listen", &addr, "--data-dir"])
            .arg(&self.data_dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sluice");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        // A TCP connect is not proof: after a kill -9 the dead process's listening socket can
        // outlive it briefly (io_uring tears down asynchronously) and accept, then reset.
        // Wait for a real ApiVersions answer.
        while Instant::now() < deadline {
            if api_versions_roundtrip(&addr) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sluice did not start; log:\n{}", self.log());
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGTERM and wait: a clean shutdown.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            panic!("sluice did not stop on SIGTERM");
        }
    }

    /// SIGKILL: a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- sluice log ----\n{}", self.log());
        }
        self.kill9();
    }
}

fn api_versions_roundtrip(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    // ApiVersions v0, correlation id 1, null client id.
    let req = [0u8, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff];
    if s.write_all(&req).is_err() {
        return false;
    }
    let mut len = [0u8; 4];
    s.read_exact(&mut len).is_ok()
}

pub struct Client {
    pub stream: TcpStream,
    corr: i32,
}

impl Client {
    pub fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream, corr: 0 }
    }

    pub fn send<Req: Encodable>(&mut self, api: ApiKey, version: i16, req: &Req) -> i32 {
        self.corr += 1;
        let frame =
            sluice_protocol::request::encode_request(api, version, self.corr, "sluice-test", req)
                .unwrap();
        self.stream.write_all(&frame).unwrap();
        self.corr
    }

    /// Reads one response frame (without the length prefix); None if the broker closed.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        if let Err(e) = self.stream.read_exact(&mut len) {
            eprintln!("read_frame: {e}");
            return None;
        }
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        let corr = self.send(api, version, req);
        let frame = self.read_frame().expect("broker closed the connection");
        let (got, resp) =
            sluice_protocol::request::decode_response::<Resp>(api, version, frame).unwrap();
        assert_eq!(got, corr);
        resp
    }

    /// True if the broker closes the connection (or sends nothing) within `wait`.
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 1];
        match self.stream.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}

pub fn sb(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_string())
}

/// Walks record batches: (base offset, record count, first record's value).
pub fn batches(mut records: Bytes) -> Vec<(i64, i32, Vec<u8>)> {
    let mut out = Vec::new();
    while records.remaining() >= 12 {
        let v = match sluice_protocol::batch::BatchView::parse(&records) {
            Ok(v) => v,
            Err(_) => break,
        };
        out.push((v.base_offset().0, v.records_count(), first_value(&v)));
        let n = v.total_len();
        records.advance(n);
    }
    out
}

fn first_value(v: &sluice_protocol::batch::BatchView<'_>) -> Vec<u8> {
    use sluice_protocol::batch::read_varint;
    let b = &v.as_bytes()[sluice_protocol::batch::HEADER_BYTES..];
    let (_, used) = read_varint(b).unwrap();
    let mut r = &b[used + 1..];
    for _ in 0..2 {
        let (_, u) = read_varint(r).unwrap();
        r = &r[u..];
    }
    let (klen, u) = read_varint(r).unwrap();
    r = &r[u + klen.max(0) as usize..];
    let (vlen, u) = read_varint(r).unwrap();
    r[u..u + vlen.max(0) as usize].to_vec()
}
