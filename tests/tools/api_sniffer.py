#!/usr/bin/env python3
"""Kafka-protocol sniffing TCP proxy: forwards bytes unchanged and records,
per client.id, which API keys and versions the clients send.

    python3 tests/tools/api_sniffer.py --listen 127.0.0.1:49194 \
        --target 127.0.0.1:49192 --out /tmp/api-versions.json

The broker behind it must advertise the --listen address (Sluice:
``--advertise``, bench/kafka/run-kafka.sh: ``--advertise``), otherwise clients
only send their bootstrap requests through the proxy. The JSON summary is
rewritten every second and on SIGINT/SIGTERM:
``{client_id: {"Produce": {"9": 120, ...}, ...}}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import struct
from collections import defaultdict

API_NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 4: "LeaderAndIsr",
    5: "StopReplica", 6: "UpdateMetadata", 7: "ControlledShutdown", 8: "OffsetCommit",
    9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
    13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups",
    17: "SaslHandshake", 18: "ApiVersions", 19: "CreateTopics", 20: "DeleteTopics",
    21: "DeleteRecords", 22: "InitProducerId", 23: "OffsetForLeaderEpoch",
    24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn", 27: "WriteTxnMarkers",
    28: "TxnOffsetCommit", 29: "DescribeAcls", 30: "CreateAcls", 31: "DeleteAcls",
    32: "DescribeConfigs", 33: "AlterConfigs", 34: "AlterReplicaLogDirs",
    35: "DescribeLogDirs", 36: "SaslAuthenticate", 37: "CreatePartitions",
    38: "CreateDelegationToken", 39: "RenewDelegationToken", 40: "ExpireDelegationToken",
    41: "DescribeDelegationToken", 42: "DeleteGroups", 43: "ElectLeaders",
    44: "IncrementalAlterConfigs", 45: "AlterPartitionReassignments",
    46: "ListPartitionReassignments", 47: "OffsetDelete", 48: "DescribeClientQuotas",
    49: "AlterClientQuotas", 50: "DescribeUserScramCredentials",
    51: "AlterUserScramCredentials", 60: "DescribeCluster", 61: "DescribeProducers",
    65: "DescribeTransactions", 66: "ListTransactions", 68: "ConsumerGroupHeartbeat",
    69: "ConsumerGroupDescribe", 71: "GetTelemetrySubscriptions", 72: "PushTelemetry",
    75: "DescribeTopicPartitions",
}

STATS: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))


async def pump(reader, writer, parse: bool):
    buf = bytearray()
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            if parse:
                buf += data
                while len(buf) >= 4:
                    (size,) = struct.unpack_from(">i", buf, 0)
                    if len(buf) < 4 + size:
                        break
                    frame = bytes(buf[4:4 + size])
                    del buf[:4 + size]
                    if len(frame) < 10:
                        continue
                    key, ver, _corr, clen = struct.unpack_from(">hhih", frame, 0)
                    cid = frame[10:10 + clen].decode("utf-8", "replace") if clen >= 0 else "<null>"
                    STATS[cid][API_NAMES.get(key, f"api{key}")][str(ver)] += 1
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            writer.close()
        except Exception:  # noqa: BLE001
            pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    lh, lp = a.listen.rsplit(":", 1)
    th, tp = a.target.rsplit(":", 1)

    async def handle(cr, cw):
        try:
            br, bw = await asyncio.open_connection(th, int(tp))
        except OSError:
            cw.close()
            return
        await asyncio.gather(pump(cr, bw, True), pump(br, cw, False))

    def dump():
        with open(a.out, "w") as f:
            json.dump({c: {k: dict(v) for k, v in apis.items()} for c, apis in STATS.items()},
                      f, indent=1, sort_keys=True)

    server = await asyncio.start_server(handle, lh, int(lp))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, stop.set)
    async with server:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
            dump()
    dump()


if __name__ == "__main__":
    asyncio.run(main())
