//! `sluice`: the composition root. Parses the CLI and config, checks the machine (io_uring,
//! locked memory, data directory), starts one pinned glommio executor per shard plus the
//! metadata executor, wires the cross-core channels, and shuts down cleanly on SIGINT/SIGTERM.

mod config;
mod disk;
mod errors;
mod group;
mod handlers;
mod meta_service;
mod metadata;
mod server;
mod shard;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use config::Config;
use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use glommio::{LocalExecutorBuilder, Placement};
use shard::{MetaMsg, ShardContext, ShardMsg, SHARD_CHANNEL_CAPACITY};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A thread-per-core Kafka-protocol broker on io_uring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker.
    Serve(ServeArgs),
    /// Check a config file and print the effective settings.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file (every key has a default; see tuning/sluice.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// HOST:PORT to accept Kafka clients on (server.listen).
    #[arg(long)]
    listen: Option<String>,
    /// HOST:PORT given to clients in Metadata (server.advertise).
    #[arg(long)]
    advertise: Option<String>,
    /// Data directory (server.data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Number of shards (server.shards; 0 = one per core).
    #[arg(long)]
    shards: Option<usize>,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::CheckConfig { config } => Config::load(Some(&config)).and_then(|c| {
            c.validate()?;
            println!("{c:#?}");
            Ok(())
        }),
    };
    if let Err(e) = result {
        eprintln!("sluice: error: {e:#}");
        std::process::exit(1);
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = Config::load(args.config.as_deref())?;
    if let Some(l) = args.listen {
        cfg.server.listen = l;
    }
    if let Some(a) = args.advertise {
        cfg.server.advertise = Some(a);
    }
    if let Some(d) = args.data_dir {
        cfg.server.data_dir = d;
    }
    if let Some(s) = args.shards {
        cfg.server.shards = s;
    }
    cfg.validate()?;
    let cores = available_cores();
    let shards = if cfg.server.shards == 0 {
        cores.len().max(1)
    } else {
        cfg.server.shards
    };
    let shard_cores: Vec<usize> = if cfg.server.cores.is_empty() {
        (0..shards).map(|i| cores[i % cores.len()]).collect()
    } else {
        if cfg.server.cores.len() < shards {
            bail!(
                "server.cores: lists {} cores for {} shards",
                cfg.server.cores.len(),
                shards
            );
        }
        cfg.server.cores[..shards].to_vec()
    };
    let meta_core = cfg
        .server
        .metadata_core
        .or_else(|| cores.iter().copied().find(|c| !shard_cores.contains(c)));
    check_data_dir(&cfg.server.data_dir)?;
    check_locked_memory((shards + 1) * cfg.server.io_memory_kib * 1024)?;
    let mut store = metadata::MetadataStore::open(&cfg.server.data_dir)?;
    store.ensure_internal_topic(
        group::OFFSETS_TOPIC,
        cfg.server.offsets_topic_partitions,
        cfg.server.offsets_topic_segment_bytes,
    )?;
    info!(listen = %cfg.server.listen, data_dir = %cfg.server.data_dir.display(), shards, ?shard_cores, ?meta_core, "starting sluice");

    let shutdown = Arc::new(AtomicBool::new(false));
    {
        let flag = shutdown.clone();
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])
        .context("installing signal handlers")?;
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                info!(signal = sig, "shutting down");
                flag.store(true, Ordering::SeqCst);
            }
            // A second signal: stop now.
            if signals.forever().next().is_some() {
                std::process::exit(130);
            }
        });
    }

    // Channel mesh: shard→shard, shard→meta, meta→shard. All SPSC, bounded.
    let mut shard_tx: Vec<Vec<Option<SharedSender<ShardMsg>>>> = (0..shards)
        .map(|_| (0..shards).map(|_| None).collect())
        .collect();
    let mut shard_rx: Vec<Vec<SharedReceiver<ShardMsg>>> =
        (0..shards).map(|_| Vec::new()).collect();
    for (i, row) in shard_tx.iter_mut().enumerate() {
        for (j, slot) in row.iter_mut().enumerate() {
            if i != j {
                let (tx, rx) = shared_channel::new_bounded(SHARD_CHANNEL_CAPACITY);
                *slot = Some(tx);
                shard_rx[j].push(rx);
            }
        }
    }
    let mut meta_to_shard = Vec::new();
    for rxs in shard_rx.iter_mut() {
        let (tx, rx) = shared_channel::new_bounded(SHARD_CHANNEL_CAPACITY);
        meta_to_shard.push(tx);
        rxs.push(rx);
    }
    let mut shard_to_meta = Vec::new();
    let mut meta_inputs = Vec::new();
    for _ in 0..shards {
        let (tx, rx) = shared_channel::new_bounded::<MetaMsg>(SHARD_CHANNEL_CAPACITY);
        shard_to_meta.push(tx);
        meta_inputs.push(rx);
    }

    let cfg = Arc::new(cfg);
    // Startup barrier: no shard listens before every shard has opened (and recovered) its
    // partitions, so no connection waits in a listen queue behind a recovering shard.
    let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let io_memory = cfg.server.io_memory_kib * 1024;
    let mut handles = Vec::new();
    {
        let flag = shutdown.clone();
        let placement = meta_core
            .map(Placement::Fixed)
            .unwrap_or(Placement::Unbound);
        let h = LocalExecutorBuilder::new(placement)
            .name("sluice-meta")
            .io_memory(io_memory)
            .spawn(move || async move {
                let senders = futures_util::future::join_all(meta_to_shard.into_iter().map(|s| s.connect())).await;
                let inputs = futures_util::future::join_all(meta_inputs.into_iter().map(|r| r.connect())).await;
                let svc = meta_service::MetaService::new(store, senders);
                svc.run(inputs, flag).await;
                Ok::<(), anyhow::Error>(())
            })
            .map_err(|e| anyhow::anyhow!("cannot start the metadata executor: {e} (is io_uring available and `ulimit -l` high enough?)"))?;
        handles.push(("metadata".to_string(), h));
    }
    for (id, ((peers, rxs), to_meta)) in shard_tx
        .into_iter()
        .zip(shard_rx)
        .zip(shard_to_meta)
        .enumerate()
    {
        let cfg = cfg.clone();
        let flag = shutdown.clone();
        let opened = opened.clone();
        let h = LocalExecutorBuilder::new(Placement::Fixed(shard_cores[id]))
            .name(&format!("sluice-shard-{id}"))
            .io_memory(io_memory)
            .spawn(move || async move {
                let result =
                    run_shard(id, shards, cfg, peers, rxs, to_meta, flag.clone(), opened).await;
                if result.is_err() {
                    flag.store(true, Ordering::SeqCst);
                }
                result
            })
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot start shard {id} on core {}: {e} (is io_uring available?)",
                    shard_cores[id]
                )
            })?;
        handles.push((format!("shard {id}"), h));
    }
    let mut failure = None;
    for (name, h) in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                error!(executor = %name, error = %format!("{e:#}"), "executor failed");
                shutdown.store(true, Ordering::SeqCst);
                failure.get_or_insert(e.context(name));
            }
            Err(e) => {
                shutdown.store(true, Ordering::SeqCst);
                failure.get_or_insert(anyhow::anyhow!("{name} panicked: {e:?}"));
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => {
            info!("sluice stopped cleanly");
            Ok(())
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_shard(
    id: usize,
    shards: usize,
    cfg: Arc<Config>,
    peers: Vec<Option<SharedSender<ShardMsg>>>,
    rxs: Vec<SharedReceiver<ShardMsg>>,
    to_meta: SharedSender<MetaMsg>,
    shutdown: Arc<AtomicBool>,
    opened: Arc<std::sync::atomic::AtomicUsize>,
) -> anyhow::Result<()> {
    let peer_futs = peers.into_iter().map(|p| async move {
        match p {
            Some(p) => Some(p.connect().await),
            None => None,
        }
    });
    let (peers, rxs, meta) = futures_util::future::join3(
        futures_util::future::join_all(peer_futs),
        futures_util::future::join_all(rxs.into_iter().map(|r| r.connect())),
        to_meta.connect(),
    )
    .await;
    let ctx = ShardContext::new(id, shards, cfg.clone(), peers, meta)?;
    let ready = ctx.snapshot_ready.wait();
    for rx in rxs {
        glommio::spawn_local(ctx.clone().serve_peer(rx)).detach();
    }
    ready.await;
    opened.fetch_add(1, Ordering::SeqCst);
    while opened.load(Ordering::SeqCst) < shards {
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }
    let listener = glommio::net::TcpListener::bind(cfg.server.listen.as_str()).map_err(|e| {
        anyhow::anyhow!("server.listen: cannot listen on {}: {e}", cfg.server.listen)
    })?;
    info!(shard = id, listen = %cfg.server.listen, "shard ready");
    glommio::spawn_local(ctx.clone().housekeeping()).detach();
    {
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            while !shutdown.load(Ordering::Relaxed) {
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
            ctx.shutting_down.set(true);
        })
        .detach();
    }
    server::accept_loop(ctx.clone(), listener).await;
    ctx.close_all().await;
    Ok(())
}

fn available_cores() -> Vec<usize> {
    let mut set = std::mem::MaybeUninit::<libc::cpu_set_t>::zeroed();
    #[allow(unsafe_code)]
    // SAFETY: sched_getaffinity fills a zeroed cpu_set_t of the size we pass.
    let ok = unsafe {
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set.as_mut_ptr())
    } == 0;
    if ok {
        #[allow(unsafe_code)]
        // SAFETY: initialised by the successful call above.
        let set = unsafe { set.assume_init() };
        #[allow(unsafe_code)]
        let cores: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect();
        if !cores.is_empty() {
            return cores;
        }
    }
    (0..std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1))
        .collect()
}

fn check_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("server.data_dir: cannot create {}", dir.display()))?;
    let probe = dir.join(".sluice-write-probe");
    std::fs::write(&probe, b"ok")
        .with_context(|| format!("server.data_dir: {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Raises the soft RLIMIT_MEMLOCK to the hard limit and checks it covers the io_uring
/// buffers of every executor.
fn check_locked_memory(needed_bytes: usize) -> anyhow::Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    #[allow(unsafe_code)]
    // SAFETY: plain syscalls on a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) != 0 {
            return Ok(());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim);
        }
    }
    let is_root = {
        #[allow(unsafe_code)]
        // SAFETY: geteuid has no preconditions.
        unsafe {
            libc::geteuid() == 0
        }
    };
    if !is_root
        && lim.rlim_cur != libc::RLIM_INFINITY
        && (lim.rlim_cur as usize) < needed_bytes + (1 << 20)
    {
        bail!(
            "locked-memory limit is {} KiB but the executors need about {} KiB: raise it (`ulimit -l`, or LimitMEMLOCK= in systemd) or lower server.io_memory_kib",
            lim.rlim_cur / 1024,
            needed_bytes / 1024 + 1024
        );
    }
    Ok(())
}
