//! CI smoke test: the real `sluice` broker, a few seconds of load, and checks that the
//! result file has every field, that every subscription read exactly what was
//! acknowledged, and that the report files exist. No timing assertions.
//!
//! The broker binary is a build output of another package: run `cargo build --release
//! --workspace` (or `cargo build -p sluice`) first; the test looks for target/release/sluice,
//! then target/debug/sluice.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn broker_binary() -> PathBuf {
    let root = workspace_root();
    for p in ["target/release/sluice", "target/debug/sluice"] {
        let p = root.join(p);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "the sluice broker binary is missing (looked for target/release/sluice and target/debug/sluice under {}): run `cargo build --release --workspace` first",
        root.display()
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_broker(data: &Path) -> (Broker, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(broker_binary())
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sluice");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "sluice did not start listening on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (Broker(child), addr)
}

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
}

#[test]
fn smoke_run_against_the_real_broker() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, addr) = start_broker(&dir.path().join("data"));
    let out = dir.path().join("out");
    let workload = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smoke.toml");
    let run = bench()
        .args([
            "run",
            "--quiet",
            "--label",
            "smoke",
            "--target",
            &addr,
            "--workload",
        ])
        .arg(&workload)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "sluice-bench failed: {stderr}");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    for key in [
        "tool",
        "version",
        "label",
        "target",
        "started_at_unix_ms",
        "harness_threads",
        "workload",
        "throughput",
        "publish_latency",
        "publish_latency_uncorrected",
        "end_to_end_latency",
        "totals",
        "timeseries",
        "files",
    ] {
        assert!(json.get(key).is_some(), "result.json lacks {key}");
    }
    for section in [
        "publish_latency",
        "publish_latency_uncorrected",
        "end_to_end_latency",
    ] {
        for key in [
            "count",
            "mean_ms",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "p99_9_ms",
            "p99_99_ms",
            "max_ms",
        ] {
            assert!(json[section].get(key).is_some(), "{section} lacks {key}");
        }
        assert!(
            json[section]["count"].as_u64().unwrap() > 0,
            "{section} is empty"
        );
    }
    for key in [
        "window_s",
        "produce_msgs",
        "produce_msgs_per_s",
        "produce_mib_per_s",
        "consume_msgs",
        "consume_msgs_per_s",
        "consume_mib_per_s",
        "harness_cpu_s",
        "harness_cores_used",
    ] {
        assert!(
            json["throughput"].get(key).is_some(),
            "throughput lacks {key}"
        );
    }
    let totals = &json["totals"];
    let produced = totals["produced_msgs"].as_u64().unwrap();
    assert!(produced > 0);
    let per_sub: Vec<u64> = totals["consumed_msgs_per_subscription"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(
        per_sub,
        vec![produced, produced],
        "every subscription reads what was produced"
    );
    assert_eq!(totals["produced_equals_consumed"], true);
    assert_eq!(totals["produce_errors"], 0);
    assert!(!json["timeseries"].as_array().unwrap().is_empty());
    for f in [
        "result.json",
        "publish-latency.hgrm",
        "publish-latency-uncorrected.hgrm",
        "end-to-end-latency.hgrm",
        "latency.svg",
        "throughput.svg",
        "report.html",
    ] {
        let p = out.join(f);
        assert!(
            p.exists() && std::fs::metadata(&p).unwrap().len() > 0,
            "{f} missing or empty"
        );
    }
}

#[test]
fn errors_are_one_line_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\npartitions_per_topic = 1\nproducer_rate = 10\nduration_s = 1\nlinger = 3\n",
    )
    .unwrap();
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smoke.toml");
    let port = free_port(); // nothing listens there
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["check".into(), bad.display().to_string()], "linger"),
        (
            vec![
                "run".into(),
                "--target".into(),
                format!("127.0.0.1:{port}"),
                "--workload".into(),
                good.display().to_string(),
            ],
            "cannot connect",
        ),
    ];
    for (args, needle) in cases {
        let out = bench().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{args:?}: not one line: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let impossible = dir.path().join("fast.toml");
    std::fs::write(
        &impossible,
        "name = \"x\"\npartitions_per_topic = 1\nproducer_rate = 1e12\nduration_s = 1\n",
    )
    .unwrap();
    let out = bench().arg("check").arg(&impossible).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("impossible"));
}
