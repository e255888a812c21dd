//! Scenario tests for the partition log over the in-memory disk: no real disk, no real clock.

use futures_executor::block_on;
use sluice_protocol::batch::{iter_batches, BatchBuilder};
use sluice_protocol::types::{LeaderEpoch, Offset};
use sluice_storage::clock::ManualClock;
use sluice_storage::disk::{Disk, MemDisk, StdDisk};
use sluice_storage::{Acks, FlushPolicy, LogConfig, LogError, PartitionLog};
use std::path::PathBuf;
use std::rc::Rc;

fn batch(n: usize, ts: i64, tag: &str) -> Vec<u8> {
    let mut b = BatchBuilder::new(ts);
    for i in 0..n {
        b.push(
            Some(format!("{tag}-k{i}").as_bytes()),
            Some(format!("{tag}-v{i}").as_bytes()),
            i as i64,
        );
    }
    b.build()
}

fn idem_batch(n: usize, pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
    let mut b = BatchBuilder::new(1_000).idempotent(pid, epoch, seq);
    for i in 0..n {
        b.push(
            None,
            Some(format!("p{pid}-s{}", seq + i as i32).as_bytes()),
            0,
        );
    }
    b.build()
}

fn open<D: Disk>(disk: &D, clock: &Rc<ManualClock>, config: LogConfig) -> Rc<PartitionLog<D>> {
    block_on(PartitionLog::open(
        disk.clone(),
        clock.clone(),
        PathBuf::from("/data/t-0"),
        config,
        LeaderEpoch(0),
    ))
    .unwrap()
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 2_000,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

/// Walks every batch from the log start to the high watermark, reading `max_bytes` at a
/// time and checking each CRC.
fn for_each_batch<D: Disk>(
    log: &PartitionLog<D>,
    max_bytes: usize,
    mut f: impl FnMut(&sluice_protocol::batch::BatchView<'_>),
) {
    let mut next = log.log_start_offset();
    while next < log.high_watermark() {
        let r = block_on(log.read(next, max_bytes)).unwrap();
        assert!(!r.records.is_empty(), "no progress at {next:?}");
        for v in iter_batches(&r.records) {
            let v = v.unwrap();
            v.verify_crc().unwrap();
            f(&v);
            next = Offset(v.last_offset().0 + 1);
        }
    }
}

/// (base offset, record count) of every batch.
fn read_all<D: Disk>(log: &PartitionLog<D>) -> Vec<(i64, i32)> {
    let mut out = Vec::new();
    for_each_batch(log, 1000, |v| {
        out.push((v.base_offset().0, v.records_count()))
    });
    out
}

#[test]
fn appends_get_contiguous_offsets_across_rolls() {
    let disk = MemDisk::new();
    let clock = Rc::new(ManualClock::new(1_000));
    let log = open(&disk, &clock, small_segments());
    let mut expected = Vec::new();
    let mut next = 0;
    for i in 0..60 {
        let n = 1 + i % 4;
        let mut out = log
            .append(&batch(n, 1_000 + i as i64, "a"), Acks::Leader)
            .unwrap();
        assert_eq!(out.base_offset, Offset(next));
        expected.push((next, n as i32));
        next += n as i64;
        if i % 3 == 0 {
            block_on(log.flush_once()).unwrap();
            block_on(out.wait()).unwrap();
        }
    }
    block_on(log.flush_once()).unwrap();
    assert!(log.segment_count() > 3, "small segments roll");
    assert_eq!(read_all(&log), expected);
    // Reading from the middle of a batch returns the batch holding that offset.
    let r = block_on(log.read(Offset(expected[10].0 + 1), 1)).unwrap();
    let first = iter_batches(&r.records).next().unwrap().unwrap();
    assert!(first.base_offset().0 <= expected[10].0 + 1 && first.last_offset().0 > expected[10].0);
    // Segment files are named by base offset with the three Kafka extensions.
    let names: Vec<String> = disk
        .paths()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"00000000000000000000.log".to_string()));
    assert!(names.contains(&"00000000000000000000.index".to_string()));
    assert!(names.contains(&"00000000000000000000.timeindex".to_string()));
    assert!(names.contains(&"leader-epoch-checkpoint".to_string()));
}

#[test]
fn acks_all_waits_for_fsync_and_acks_one_for_write() {
    let disk = MemDisk::new();
    let clock = Rc::new(ManualClock::new(1_000));
    let log = open(&disk, &clock, LogConfig::default());
    let mut one = log.append(&batch(2, 1, "x"), Acks::Leader).unwrap();
    let mut all = log.append(&batch(2, 1, "y"), Acks::All).unwrap();
    assert_eq!(
        log.high_watermark(),
        Offset(0),
        "nothing visible before the write"
    );
    let syncs = disk.faults().syncs.get();
    block_on(log.flush_once()).unwrap();
    assert_eq!(
        disk.faults().syncs.get(),
        syncs + 1,
        "one fsync for the whole drained batch"
    );
    block_on(one.wait()).unwrap();
    block_on(all.wait()).unwrap();
    assert_eq!(log.durable_offset(), Offset(4));
}

#[test]
fn failed_fsync_poisons_and_never_acknowledges() {
    let disk = MemDisk::new();
    let clock = Rc::new(ManualClock::new(1_000));
    let log = open(&disk, &clock, LogConfig::default());
    disk.faults().fail_sync.set(true);
    let mut all = log.append(&batch(1, 1, "x"), Acks::All).unwrap();
    assert!(matches!(
        block_on(log.flush_once()),
        Err(LogError::Poisoned(_))
    ));
    assert!(matches!(block_on(all.wait()), Err(LogError::Poisoned(_))));
    disk.faults().fail_sync.set(false);
    assert!(
        matches!(
            log.append(&batch(1, 1, "z"), Acks::All),
            Err(LogError::Poisoned(_))
        ),
        "no retry after a failed fsync"
    );
}

#[test]
fn crash_keeps_every_fsynced_append_and_recovers_a_torn_tail() {
    let disk = MemDisk::new();
    let clock = Rc::new(ManualClock::new(1_000));
    let log = open(&disk, &clock, small_segments());
    let mut acked = Vec::new();
    for i in 0..40 {
        let mut out = log
            .append(&batch(3, 1_000, &format!("b{i}")), Acks::All)
            .unwrap();
        block_on(log.flush_once()).unwrap();
        block_on(out.wait()).unwrap();
        acked.push((out.base_offset.0, 3));
    }
    // Not flushed: lost in the crash, and never acknowledged.
    let _unacked = log.append(&batch(3, 1_000, "lost"), Acks::All).unwrap();
    drop(log);
    disk.crash();
    // A torn write at the tail of the active segment.
    let active = disk
        .paths()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max()
        .unwrap();
    disk.append_garbage(
        &active,
        &[0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 1, 0, 0, 0, 0, 2, 2, 7],
    );
    let log = open(&disk, &clock, small_segments());
    assert_eq!(read_all(&log), acked);
    assert_eq!(log.log_end_offset(), Offset(120));
    let out = log.append(&batch(1, 1, "after"), Acks::Leader).unwrap();
    assert_eq!(
        out.base_offset,
        Offset(120),
        "the log accepts new writes after recovery"
    );
}

#[test]
fn clean_close_then_reopen_recovers_nothing_and_keeps_offsets() {
    let disk = MemDisk::new();
    let clock = Rc::new(ManualClock::new(1_000));
    let log = open(&disk, &clock, small_segments());
    for i in 0..25 {
        log.append(&batch(2, 1_000, &format!("c{i}")), Acks::Leader)
            .unwrap();
    }
    block_on(log.close()).unwrap();
    let before = disk.faults().writes.get();
    let log = open(&disk, &clock, small_segments());
    assert_eq!(
        disk.faults().writes.get(),
        before,
        "no repair writes after a clean shutdown"
    );
    assert_eq!(log.log_end_offset(), Offset(50));
    assert_eq!(read_all(&log).len(), 25);
}

#[test]
fn idempotent_retry_is_deduplicated_even_after_restart() {
    for crash in [false, true] {
        let disk = MemDisk::new();
        let clock = Rc::new(ManualClock::new(1_000));
        let log = open(&disk, &clock, small_segments());
        let first = idem_batch(5, 42, 0, 0);
        let mut out = log.append(&first, Acks::All).unwrap();
        block_on(log.flush_once()).unwrap();
        block_on(out.wait()).unwrap();
        let retry = log.append(&first, Acks::All).unwrap();
        assert!(retry.duplicate);
        assert_eq!(retry.base_offset, Offset(0));
        if crash {
            drop(log);
            disk.crash();
        } else {
            block_on(log.close()).unwrap();
        }
        let log = open(&disk, &clock, small_segments());
        let retry = log.append(&first, Acks::All).unwrap();
        assert!(
            retry.duplicate,
            "crash={crash}: retry after restart is caught"
        );
        assert_eq!(retry.base_offset, Offset(0));
        assert!(matches!(
            log.append(&idem_batch(1, 42, 0, 9), Acks::All),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        let next = log.append(&idem_batch(2, 42, 0, 5), Acks::All).unwrap();
        assert_eq!(next.base_offset, Offset(5));
        let bumped = log.append(&idem_batch(1, 42, 1, 0), Acks::All).unwrap();
        assert_eq!(
            bumped.base_offset,
            Offset(7),
            "a new epoch restarts at sequence 0"
        );
        assert!(
            matches!(
                log.append(&idem_batch(1, 42, 0, 7), Acks::All),
                Err(LogError::InvalidProducerEpoch { .. })
            ),
            "stale epoch is fenced"
        );
    }
}

#[test]
fn retention_by_size_and_time_deletes_whole_sealed_segments() {
    let disk = MemDisk::new();
    let clock = Rc::new(ManualClock::new(1_000_000));
    let cfg = LogConfig {
        retention_bytes: 4_000,
        ..small_segments()
    };
    let log = open(&disk, &clock, cfg.clone());
    for i in 0..80 {
        log.append(&batch(2, 1_000_000, &format!("r{i}")), Acks::Leader)
            .unwrap();
        block_on(log.flush_once()).unwrap();
    }
    let before = log.size_bytes();
    let removed = block_on(log.enforce_retention()).unwrap();
    assert!(removed > 0);
    assert!(
        log.size_bytes() <= 4_000 + 2_000,
        "size {} (was {before})",
        log.size_bytes()
    );
    assert!(log.log_start_offset() > Offset(0));
    assert!(matches!(
        block_on(log.read(Offset(0), 100)),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Time: everything but the active segment is older than retention.ms.
    log.set_config(LogConfig {
        retention_bytes: -1,
        retention_ms: 60_000,
        ..cfg
    });
    clock.advance_ms(120_000);
    block_on(log.enforce_retention()).unwrap();
    assert_eq!(
        log.segment_count(),
        1,
        "the active segment is never deleted"
    );
}

#[test]
fn offsets_by_timestamp_are_record_exact() {
    let disk = MemDisk::new();
    let clock = Rc::new(ManualClock::new(0));
    let log = open(&disk, &clock, small_segments());
    // 30 batches of 4 records; record j of batch i has timestamp 10_000 + i*100 + j*10.
    for i in 0..30 {
        let mut b = BatchBuilder::new(10_000 + i * 100);
        for j in 0..4 {
            b.push(None, Some(b"v"), j * 10);
        }
        log.append(&b.build(), Acks::Leader).unwrap();
        block_on(log.flush_once()).unwrap();
    }
    // First record with ts >= 10_000 + 7*100 + 15 is batch 7, record 2 → offset 7*4+2.
    assert_eq!(
        block_on(log.offset_for_timestamp(10_715)).unwrap(),
        Some((Offset(30), 10_720))
    );
    assert_eq!(
        block_on(log.offset_for_timestamp(0)).unwrap(),
        Some((Offset(0), 10_000))
    );
    assert_eq!(block_on(log.offset_for_timestamp(99_999)).unwrap(), None);
}

#[test]
fn oversized_and_corrupt_batches_are_rejected_without_touching_the_log() {
    let disk = MemDisk::new();
    let clock = Rc::new(ManualClock::new(0));
    let log = open(
        &disk,
        &clock,
        LogConfig {
            max_message_bytes: 500,
            ..LogConfig::default()
        },
    );
    assert!(matches!(
        log.append(&batch(50, 0, "big"), Acks::All),
        Err(LogError::TooLarge { .. })
    ));
    let mut b = batch(1, 0, "c");
    let n = b.len();
    b[n - 2] ^= 0x55;
    assert!(matches!(log.append(&b, Acks::All), Err(LogError::Batch(_))));
    assert_eq!(log.log_end_offset(), Offset(0));
}

#[test]
fn real_files_recover_after_a_dropped_log() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Rc::new(ManualClock::new(0));
    let path = dir.path().join("topic-0");
    let cfg = small_segments();
    let log = block_on(PartitionLog::open(
        StdDisk,
        clock.clone(),
        path.clone(),
        cfg.clone(),
        LeaderEpoch(0),
    ))
    .unwrap();
    for i in 0..30 {
        log.append(&batch(2, 0, &format!("f{i}")), Acks::All)
            .unwrap();
        block_on(log.flush_once()).unwrap();
    }
    drop(log);
    let log = block_on(PartitionLog::open(
        StdDisk,
        clock,
        path.clone(),
        cfg,
        LeaderEpoch(0),
    ))
    .unwrap();
    assert_eq!(log.log_end_offset(), Offset(60));
    assert!(path.join("00000000000000000000.timeindex").exists());
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Append { records: usize, acks_all: bool },
        Flush,
        Crash,
        CleanRestart,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (1usize..6, any::<bool>()).prop_map(|(records, acks_all)| Step::Append { records, acks_all }),
            3 => Just(Step::Flush),
            1 => Just(Step::Crash),
            1 => Just(Step::CleanRestart),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Whatever the interleaving of appends, flushes, crashes and restarts: every append
        /// acknowledged as durable survives, offsets stay contiguous, and the log always
        /// accepts new writes.
        #[test]
        fn acknowledged_writes_survive_crashes(steps in proptest::collection::vec(step(), 1..60)) {
            let disk = MemDisk::new();
            let clock = Rc::new(ManualClock::new(0));
            let cfg = LogConfig { flush: FlushPolicy::EveryBatch, ..small_segments() };
            let mut log = open(&disk, &clock, cfg.clone());
            let mut waiting = Vec::new();
            let mut durable: Vec<(i64, i32)> = Vec::new();
            for s in steps {
                match s {
                    Step::Append { records, acks_all } => {
                        let acks = if acks_all { Acks::All } else { Acks::Leader };
                        let out = log.append(&batch(records, 0, "p"), acks).unwrap();
                        if acks_all { waiting.push((out, records as i32)); }
                    }
                    Step::Flush => {
                        block_on(log.flush_once()).unwrap();
                        for (mut o, n) in waiting.drain(..) {
                            block_on(o.wait()).unwrap();
                            durable.push((o.base_offset.0, n));
                        }
                    }
                    Step::Crash => {
                        waiting.clear();
                        drop(log);
                        disk.crash();
                        log = open(&disk, &clock, cfg.clone());
                    }
                    Step::CleanRestart => {
                        block_on(log.close()).unwrap();
                        for (mut o, n) in waiting.drain(..) {
                            block_on(o.wait()).unwrap();
                            durable.push((o.base_offset.0, n));
                        }
                        log = open(&disk, &clock, cfg.clone());
                    }
                }
            }
            block_on(log.flush_once()).unwrap();
            let present = read_all(&log);
            let mut expect_next = 0;
            for (off, n) in &present {
                prop_assert_eq!(*off, expect_next, "offsets contiguous");
                expect_next = off + *n as i64;
            }
            for d in &durable {
                prop_assert!(present.contains(d), "durable {:?} missing from {:?}", d, present);
            }
            let out = log.append(&batch(1, 0, "end"), Acks::Leader).unwrap();
            prop_assert_eq!(out.base_offset.0, expect_next);
        }
    }
}

fn keyed(records: &[(&str, Option<&str>)], ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(ts);
    for (k, v) in records {
        b.push(Some(k.as_bytes()), v.map(|v| v.as_bytes()), 0);
    }
    b.build()
}

/// (offset, key, value) of every record from the start of the log.
fn all_records<D: Disk>(log: &PartitionLog<D>) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    for_each_batch(log, 1 << 20, |v| {
        for rec in sluice_protocol::batch::records(v).unwrap() {
            out.push((
                v.base_offset().0 + rec.offset_delta,
                String::from_utf8(rec.key.unwrap().to_vec()).unwrap(),
                rec.value.map(|x| String::from_utf8(x.to_vec()).unwrap()),
            ));
        }
    });
    out
}

#[test]
fn compaction_keeps_the_latest_value_per_key_and_never_moves_offsets() {
    let disk = MemDisk::new();
    let clock = Rc::new(ManualClock::new(1_000_000));
    let cfg = LogConfig {
        compact: true,
        delete: false,
        delete_retention_ms: 60_000,
        segment_bytes: 300,
        ..LogConfig::default()
    };
    let log = open(&disk, &clock, cfg);
    // 40 batches over 5 keys; k0 is deleted (tombstone) half way; k1 at the end.
    let mut expected_latest = std::collections::BTreeMap::new();
    for i in 0..40 {
        let key = format!("k{}", i % 5);
        let value = if i == 20 { None } else { Some(format!("v{i}")) };
        let out = log
            .append(&keyed(&[(&key, value.as_deref())], 1_000_000), Acks::Leader)
            .unwrap();
        expected_latest.insert(key, (out.base_offset.0, value));
        block_on(log.flush_once()).unwrap();
    }
    let before = all_records(&log);
    let active_base = *log.segment_bases().last().unwrap();
    let stats = block_on(log.compact()).unwrap().unwrap();
    assert!(stats.records_removed > 20, "{stats:?}");
    assert!(stats.bytes_after < stats.bytes_before);
    let after = all_records(&log);
    // Offsets only ever disappear; survivors keep theirs, in order.
    for w in after.windows(2) {
        assert!(w[0].0 < w[1].0, "offset order");
    }
    for rec in &after {
        assert!(before.contains(rec), "{rec:?} was not in the log before");
    }
    // In the compacted part each key appears once, with its latest value there.
    let compacted: Vec<_> = after.iter().filter(|r| r.0 < active_base).collect();
    let mut seen = std::collections::HashSet::new();
    for r in &compacted {
        assert!(
            seen.insert(r.1.clone()),
            "key {} twice in the cleaned part",
            r.1
        );
    }
    // The latest record of every key is still readable.
    for (key, (off, value)) in &expected_latest {
        let found = after
            .iter()
            .find(|r| r.0 == *off)
            .unwrap_or_else(|| panic!("latest of {key} at {off} missing"));
        assert_eq!(&found.2, value);
    }
    // Nothing new: a second pass does nothing.
    assert_eq!(block_on(log.compact()).unwrap(), None);
    // Tombstones go once older than delete.retention.ms (after more data seals segments).
    clock.advance_ms(120_000);
    for i in 0..10 {
        log.append(
            &keyed(&[("k9", Some(&format!("x{i}")))], 1_120_000),
            Acks::Leader,
        )
        .unwrap();
        block_on(log.flush_once()).unwrap();
    }
    block_on(log.compact()).unwrap();
    let after2 = all_records(&log);
    assert!(
        !after2.iter().any(|r| r.2.is_none() && r.0 < 30),
        "old tombstone removed: {after2:?}"
    );
    // Still consistent after a restart.
    block_on(log.close()).unwrap();
    let log = open(
        &disk,
        &clock,
        LogConfig {
            compact: true,
            delete: false,
            segment_bytes: 300,
            ..LogConfig::default()
        },
    );
    assert_eq!(all_records(&log), after2);
}

#[test]
fn compaction_rewrites_compressed_batches_with_their_codec() {
    use sluice_protocol::batch::{rebuild_batch, BatchView};
    use sluice_protocol::compression;
    let disk = MemDisk::new();
    let clock = Rc::new(ManualClock::new(0));
    let log = open(
        &disk,
        &clock,
        LogConfig {
            compact: true,
            delete: false,
            segment_bytes: 400,
            ..LogConfig::default()
        },
    );
    for round in 0..6 {
        // A gzip batch of 3 keys, the same keys every round.
        let plain = keyed(
            &[
                ("a", Some(&format!("a{round}"))),
                ("b", Some(&format!("b{round}"))),
                ("c", Some(&format!("c{round}"))),
            ],
            0,
        );
        let v = BatchView::parse(&plain).unwrap();
        let section =
            compression::compress(1, &plain[sluice_protocol::batch::HEADER_BYTES..]).unwrap();
        let mut gz = rebuild_batch(&v, 3, &section);
        gz[21..23].copy_from_slice(&1i16.to_be_bytes()); // attributes: gzip
        let crc = crc32c::crc32c(&gz[21..]);
        gz[17..21].copy_from_slice(&crc.to_be_bytes());
        log.append(&gz, Acks::Leader).unwrap();
        block_on(log.flush_once()).unwrap();
    }
    let stats = block_on(log.compact()).unwrap().unwrap();
    assert!(stats.records_removed > 0);
    let r = block_on(log.read(Offset(0), 1 << 20)).unwrap();
    let mut seen = 0;
    for v in iter_batches(&r.records) {
        let v = v.unwrap();
        v.verify_crc().unwrap();
        assert_eq!(v.compression(), 1, "still gzip");
        let plain = compression::decompress(
            1,
            &v.as_bytes()[sluice_protocol::batch::HEADER_BYTES..],
            1 << 20,
        )
        .unwrap();
        seen += sluice_protocol::batch::records_in(&plain).unwrap().len();
    }
    assert!(seen < 18, "records were removed ({seen} left)");
}

#[test]
fn pipelined_flusher_acknowledges_only_fsynced_appends() {
    use futures_executor::LocalPool;
    use futures_executor::LocalSpawner;
    use futures_util::task::LocalSpawnExt;
    let disk = MemDisk::new();
    let clock = Rc::new(ManualClock::new(0));
    let cfg = LogConfig {
        segment_bytes: 1_500,
        ..LogConfig::default()
    };
    let log = open(&disk, &clock, cfg.clone());
    let mut pool = LocalPool::new();
    let spawner: LocalSpawner = pool.spawner();
    spawner.spawn_local(log.clone().run_flusher()).unwrap();
    let acked = Rc::new(std::cell::RefCell::new(Vec::new()));
    for i in 0..200 {
        let mut out = log
            .append(&batch(1 + i % 3, 0, &format!("p{i}")), Acks::All)
            .unwrap();
        let sink = acked.clone();
        let base = out.base_offset.0;
        spawner
            .spawn_local(async move {
                out.wait().await.unwrap();
                sink.borrow_mut().push(base);
            })
            .unwrap();
        if i % 7 == 0 {
            pool.run_until_stalled();
            // Everything acknowledged so far is fsynced.
            let durable = log.durable_offset().0;
            assert!(acked.borrow().iter().all(|b| *b < durable));
        }
    }
    pool.run_until_stalled();
    assert_eq!(acked.borrow().len(), 200, "every acks=all append answered");
    assert_eq!(log.durable_offset(), log.high_watermark());
    drop(pool);
    drop(log);
    disk.crash();
    let log = open(&disk, &clock, cfg);
    let present: Vec<i64> = read_all(&log).iter().map(|b| b.0).collect();
    for b in acked.borrow().iter() {
        assert!(
            present.contains(b),
            "acknowledged batch at {b} survived the crash"
        );
    }
}

#[test]
fn segments_roll_by_age_as_well_as_size() {
    let disk = MemDisk::new();
    let clock = Rc::new(ManualClock::new(0));
    let cfg = LogConfig {
        segment_ms: 60_000,
        ..LogConfig::default()
    };
    let log = open(&disk, &clock, cfg);
    log.append(&batch(1, 0, "a"), Acks::Leader).unwrap();
    block_on(log.flush_once()).unwrap();
    clock.advance_ms(30_000);
    log.append(&batch(1, 0, "b"), Acks::Leader).unwrap();
    block_on(log.flush_once()).unwrap();
    assert_eq!(log.segment_count(), 1, "younger than segment.ms");
    clock.advance_ms(31_000);
    log.append(&batch(1, 0, "c"), Acks::Leader).unwrap();
    block_on(log.flush_once()).unwrap();
    assert_eq!(
        log.segment_bases(),
        vec![0, 2],
        "rolled once the active segment was older than segment.ms"
    );
}

#[test]
fn max_timestamp_offset_finds_the_newest_record_not_the_last() {
    let disk = MemDisk::new();
    let clock = Rc::new(ManualClock::new(0));
    let log = open(&disk, &clock, small_segments());
    assert_eq!(block_on(log.max_timestamp_offset()).unwrap(), None);
    // Timestamps out of order: the largest (5_000 + 40) is record 2 of batch 3 (offset 11).
    for (i, base) in [1_000i64, 2_000, 3_000, 5_000, 4_000, 4_500]
        .iter()
        .enumerate()
    {
        let mut b = BatchBuilder::new(*base);
        for d in [0i64, 10, 40, 20] {
            b.push(None, Some(format!("{i}").as_bytes()), d);
        }
        log.append(&b.build(), Acks::Leader).unwrap();
        block_on(log.flush_once()).unwrap();
    }
    assert_eq!(
        block_on(log.max_timestamp_offset()).unwrap(),
        Some((Offset(3 * 4 + 2), 5_040))
    );
}
