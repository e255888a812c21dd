package dev.sluice.harness;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Kafka Java client compatibility harness for Sluice.
 *
 * <pre>
 * produce-consume --bootstrap B --topic T --count N [--acks all|1] [--logstash]
 * idempotence     --bootstrap B --topic T --count N --proxy-listen H:P --target H:P
 * verify          --bootstrap B --topic T --count N
 * proxy           --proxy-listen H:P --target H:P [--cut-min-ms A --cut-max-ms B]
 * group-consume   --bootstrap B --topic T --count N [--consumers 3 --join 1 --leave 1 ...] (GroupCommands)
 * describe-groups --bootstrap B --group G[,G2]                                        (GroupCommands)
 * </pre>
 *
 * Exit status: 0 success, 1 verification failure, 2 usage error, 3 client/broker error.
 */
public final class Harness {
    static final int EXIT_VERIFY = 1;
    static final int EXIT_USAGE = 2;
    static final int EXIT_ERROR = 3;

    /** A failure with an exit code and a one-line message. */
    static final class Fail extends RuntimeException {
        final int code;
        Fail(int code, String msg) { super(msg); this.code = code; }
    }

    static void log(String fmt, Object... args) {
        System.err.printf("[harness %tT] %s%n", System.currentTimeMillis(), String.format(fmt, args));
    }

    // ------------------------------------------------------------------ args

    static final class Args {
        final Map<String, String> opts = new HashMap<>();
        final java.util.Set<String> flags = new java.util.HashSet<>();

        Args(String[] argv, int from, java.util.Set<String> booleanFlags) {
            for (int i = from; i < argv.length; i++) {
                String a = argv[i];
                if (!a.startsWith("--")) throw new Fail(EXIT_USAGE, "unexpected argument: " + a);
                String name = a.substring(2);
                int eq = name.indexOf('=');
                if (eq >= 0) {
                    opts.put(name.substring(0, eq), name.substring(eq + 1));
                } else if (booleanFlags.contains(name)) {
                    flags.add(name);
                } else {
                    if (i + 1 >= argv.length) throw new Fail(EXIT_USAGE, "missing value for --" + name);
                    opts.put(name, argv[++i]);
                }
            }
        }
        String req(String k) {
            String v = opts.get(k);
            if (v == null) throw new Fail(EXIT_USAGE, "--" + k + " is required");
            return v;
        }
        String get(String k, String def) { return opts.getOrDefault(k, def); }
        long getLong(String k, long def) {
            String v = opts.get(k);
            try { return v == null ? def : Long.parseLong(v.replace("_", "")); }
            catch (NumberFormatException e) { throw new Fail(EXIT_USAGE, "--" + k + " expects a number, got " + v); }
        }
        boolean flag(String k) { return flags.contains(k); }
    }

    static final String USAGE = String.join("\n",
        "usage: java -jar harness.jar SUBCOMMAND [options]",
        "",
        "  produce-consume --bootstrap H:P --topic T --count N [--acks all|1] [--logstash]",
        "      produce N sequenced records (default producer settings, idempotent),",
        "      then read them back (assign(), earliest, no group) and check each",
        "      record exactly once and in order per partition. --logstash uses the",
        "      Logstash kafka output's producer settings instead (acks=1, no",
        "      idempotence, linger.ms=0, null keys, sends in synchronous batches of 125).",
        "",
        "  idempotence --bootstrap H:P --topic T --count N --proxy-listen H:P --target H:P",
        "      start a TCP proxy on --proxy-listen forwarding to --target that abruptly",
        "      closes every live connection every 200-500 ms, produce N records through it",
        "      (bootstrap = the proxy; idempotent producer, acks=all), stop the cutting",
        "      and verify through the proxy (--verify-via target: connect to --target",
        "      instead, only useful if the broker advertises --target). The broker MUST",
        "      advertise the proxy address (e.g. sluice --advertise H:P of --proxy-listen).",
        "      --bootstrap defaults to the --proxy-listen address.",
        "",
        "  verify --bootstrap H:P --topic T --count N [--from-offsets-zero]",
        "      only the read-back check, for a topic filled by an earlier run.",
        "",
        "  proxy --proxy-listen H:P --target H:P [--cut-min-ms 200 --cut-max-ms 500]",
        "      run only the cutting proxy until killed (--cut-min-ms 0 disables cuts).",
        "",
        "  group-consume --bootstrap H:P --topic T --count N [--consumers 3] [--join 1] [--leave 1]",
        "                [--bounce] [--group G] [--group-instance-id-prefix P]",
        "                [--assignor range|roundrobin|sticky|cooperative-sticky (classic) | uniform|range (consumer)]",
        "                [--group-protocol classic|consumer] [--no-produce] [--settle-timeout-s 90]",
        "                [--consumer-props k=v,k=v] [--max-poll-records 500]",
        "      produce N records into a fresh topic, then consume them with --consumers members of",
        "      one group (threads, subscribe(), commitSync after each poll). After count/4 records",
        "      --join members join, (--bounce: member c0 restarts with its static group.instance.id",
        "      and must get the same partitions without a rebalance,) then --leave members close.",
        "      Consumption pauses at each step until the group settles, so changes happen under load.",
        "      Checks: every record consumed; no record below a committed offset redelivered; no",
        "      partition owned by two members at once; balanced, complete assignment after each",
        "      change; committed offsets = end offsets at the end (Admin listConsumerGroupOffsets).",
        "",
        "  describe-groups --bootstrap H:P --group G[,G2...]",
        "      prints GROUPS_JSON {listed: [ListGroups], groups: [{state, type, assignor, members:",
        "      [{member_id, client_id, host, instance_id, assignment}], offsets: [{topic, partition,",
        "      committed, end, lag}]}]}",
        "",
        "common options:",
        "  --partitions N        partitions when creating the topic (default 6)",
        "  --no-create-topic     skip the Admin CreateTopics call (rely on auto-create)",
        "  --value-size BYTES    value size (default 100, min 24)",
        "  --timeout-s S         overall bound per phase (default 300)",
        "  --idle-timeout-s S    consumer gives up after S seconds without records (default 30)",
        "  --cut-min-ms/--cut-max-ms  proxy cut interval (default 200/500)",
        "  --producer-props k=v,k=v  extra producer settings (applied last)",
        "  --verify-via proxy|target (idempotence) where the final read-back connects",
        "  --log-level LEVEL     client library log level (default warn; error for idempotence)",
        "",
        "exit status: 0 ok, 1 verification failed, 2 usage, 3 client/broker error");

    static final java.util.Set<String> BOOL_FLAGS =
        java.util.Set.of("logstash", "no-create-topic", "from-offsets-zero", "help", "no-produce", "bounce");

    public static void main(String[] argv) {
        if (argv.length == 0 || argv[0].equals("-h") || argv[0].equals("--help") || argv[0].equals("help")) {
            System.out.println(USAGE);
            System.exit(argv.length == 0 ? EXIT_USAGE : 0);
        }
        int code;
        try {
            Args a = new Args(argv, 1, BOOL_FLAGS);
            String defLevel = argv[0].equals("idempotence") ? "error" : "warn";
            System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", a.get("log-level", defLevel));
            System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
            System.setProperty("org.slf4j.simpleLogger.showDateTime", "true");
            extraProducerProps = a.opts.get("producer-props");
            switch (argv[0]) {
                case "produce-consume": produceConsume(a); break;
                case "idempotence": idempotence(a); break;
                case "verify": verifyOnly(a); break;
                case "proxy": proxyOnly(a); break;
                case "group-consume": GroupCommands.groupConsume(a); break;
                case "describe-groups": GroupCommands.describeGroups(a); break;
                default: throw new Fail(EXIT_USAGE, "unknown subcommand " + argv[0] + "\n" + USAGE);
            }
            System.out.println("OK " + argv[0]);
            code = 0;
        } catch (Fail f) {
            System.out.println("FAIL " + argv[0] + ": " + f.getMessage());
            System.err.println("FAIL " + argv[0] + ": " + f.getMessage());
            code = f.code;
        } catch (Throwable t) {
            System.out.println("FAIL " + argv[0] + ": unexpected " + t);
            t.printStackTrace();
            code = EXIT_ERROR;
        }
        System.out.flush();
        // Client threads may linger; do not let them keep the JVM alive.
        Runtime.getRuntime().halt(code);
    }

    // ------------------------------------------------------------ record format

    /** Key "k0000000042"; value "v0000000042|" padded with a repeating pattern. */
    static byte[] key(long seq) {
        return String.format("k%010d", seq).getBytes(StandardCharsets.US_ASCII);
    }

    static byte[] value(long seq, int size) {
        byte[] v = new byte[size];
        byte[] head = String.format("v%010d|", seq).getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(head, 0, v, 0, head.length);
        for (int i = head.length; i < size; i++) v[i] = (byte) ('a' + (seq + i) % 26);
        return v;
    }

    /** Returns the sequence number encoded in the record, or throws Fail. */
    static long decode(ConsumerRecord<byte[], byte[]> r, int size, boolean expectKey) {
        byte[] v = r.value();
        String where = r.topic() + "-" + r.partition() + "@" + r.offset();
        if (v == null || v.length != size)
            throw new Fail(EXIT_VERIFY, where + ": value length " + (v == null ? "null" : v.length) + ", expected " + size);
        long seq;
        try {
            seq = Long.parseLong(new String(v, 1, 10, StandardCharsets.US_ASCII));
        } catch (NumberFormatException e) {
            throw new Fail(EXIT_VERIFY, where + ": unparseable value " + new String(v, 0, Math.min(24, v.length), StandardCharsets.US_ASCII));
        }
        if (!java.util.Arrays.equals(v, value(seq, size)))
            throw new Fail(EXIT_VERIFY, where + ": corrupted value for seq " + seq);
        if (expectKey) {
            if (r.key() == null || !java.util.Arrays.equals(r.key(), key(seq)))
                throw new Fail(EXIT_VERIFY, where + ": key " + (r.key() == null ? "null" : new String(r.key(), StandardCharsets.US_ASCII)) + " does not match value seq " + seq);
        } else if (r.key() != null) {
            throw new Fail(EXIT_VERIFY, where + ": expected null key, got " + new String(r.key(), StandardCharsets.US_ASCII));
        }
        return seq;
    }

    // ---------------------------------------------------------------- helpers

    static Properties baseProps(String bootstrap) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        return p;
    }

    static void ensureTopic(Args a, String bootstrap, String topic) {
        if (a.flag("no-create-topic")) return;
        int partitions = (int) a.getLong("partitions", 6);
        Properties p = baseProps(bootstrap);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        try (Admin admin = Admin.create(p)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get(30, TimeUnit.SECONDS);
            log("created topic %s with %d partitions", topic, partitions);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof TopicExistsException) {
                log("topic %s already exists", topic);
            } else {
                log("WARNING: CreateTopics failed (%s); relying on auto-create", e.getCause());
            }
        } catch (Exception e) {
            log("WARNING: CreateTopics failed (%s); relying on auto-create", e);
        }
    }

    static KafkaConsumer<byte[], byte[]> newConsumer(String bootstrap) {
        Properties p = baseProps(bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.ALLOW_AUTO_CREATE_TOPICS_CONFIG, "true");
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        return new KafkaConsumer<>(p);
    }

    static List<TopicPartition> partitions(KafkaConsumer<byte[], byte[]> c, String topic, long timeoutMs) {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (true) {
            List<PartitionInfo> infos;
            try {
                infos = c.partitionsFor(topic, Duration.ofSeconds(10));
            } catch (Exception e) {
                infos = null;
                log("partitionsFor(%s) failed: %s", topic, e);
            }
            if (infos != null && !infos.isEmpty()) {
                List<TopicPartition> tps = new ArrayList<>();
                for (PartitionInfo i : infos) tps.add(new TopicPartition(topic, i.partition()));
                tps.sort((x, y) -> Integer.compare(x.partition(), y.partition()));
                return tps;
            }
            if (System.currentTimeMillis() > deadline)
                throw new Fail(EXIT_ERROR, "no partition metadata for topic " + topic);
            sleep(500);
        }
    }

    /** End offsets of every partition before producing (so a topic may be reused). */
    static Map<TopicPartition, Long> baseline(String bootstrap, String topic, boolean zero) {
        try (KafkaConsumer<byte[], byte[]> c = newConsumer(bootstrap)) {
            List<TopicPartition> tps = partitions(c, topic, 60_000);
            Map<TopicPartition, Long> m = new HashMap<>();
            if (zero) {
                for (TopicPartition tp : tps) m.put(tp, 0L);
            } else {
                m.putAll(c.endOffsets(tps, Duration.ofSeconds(30)));
            }
            long total = m.values().stream().mapToLong(Long::longValue).sum();
            log("topic %s: %d partitions, %d records already present", topic, tps.size(), total);
            return m;
        }
    }

    static void sleep(long ms) {
        try { Thread.sleep(ms); } catch (InterruptedException e) { Thread.currentThread().interrupt(); }
    }

    // ---------------------------------------------------------------- produce

    /** Producer settings of logstash-integration-kafka's output (lib/logstash/outputs/kafka.rb). */
    static void logstashProps(Properties p) {
        p.put(ProducerConfig.ACKS_CONFIG, "1");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false");
        p.put(ProducerConfig.BATCH_SIZE_CONFIG, "16384");
        p.put(ProducerConfig.BUFFER_MEMORY_CONFIG, "33554432");
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, "none");
        p.put(ProducerConfig.CLIENT_DNS_LOOKUP_CONFIG, "use_all_dns_ips");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "0");
        p.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, "1048576");
        p.put(ProducerConfig.RECEIVE_BUFFER_CONFIG, "32768");
        p.put(ProducerConfig.RECONNECT_BACKOFF_MS_CONFIG, "50");
        p.put(ProducerConfig.RETRY_BACKOFF_MS_CONFIG, "100");
        p.put(ProducerConfig.SEND_BUFFER_CONFIG, "131072");
        // retries: unset in Logstash (client default, i.e. retry until delivery.timeout.ms).
    }

    static final class ProduceStats {
        long sent;
        long millis;
    }

    /**
     * Produces seq 0..count-1. Default mode: async sends with a callback, then flush.
     * Logstash mode: null keys, synchronous batches of 125 (pipeline.batch.size), like
     * the plugin's multi_receive (send all, then wait on every future).
     */
    static String extraProducerProps = null;

    static ProduceStats produce(String bootstrap, String topic, long count, int size, String acks,
                                boolean logstash, long timeoutMs) {
        Properties p = baseProps(bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        if (logstash) {
            logstashProps(p);
            if (acks != null) p.put(ProducerConfig.ACKS_CONFIG, acks);
        } else if (acks != null) {
            p.put(ProducerConfig.ACKS_CONFIG, acks);
        }
        if (extraProducerProps != null && !extraProducerProps.isEmpty()) {
            for (String kv : extraProducerProps.split(",")) {
                int eq = kv.indexOf('=');
                if (eq <= 0) throw new Fail(EXIT_USAGE, "--producer-props expects k=v[,k=v...], got " + kv);
                p.put(kv.substring(0, eq).trim(), kv.substring(eq + 1).trim());
            }
        }
        log("producing %d records of %d bytes to %s via %s (%s, acks=%s)", count, size, topic, bootstrap,
            logstash ? "logstash settings" : "default settings", p.getProperty(ProducerConfig.ACKS_CONFIG, "default(all)"));
        AtomicLong acked = new AtomicLong();
        AtomicReference<Exception> firstError = new AtomicReference<>();
        AtomicLong errors = new AtomicLong();
        double retries = Double.NaN, errorsMetric = Double.NaN;
        long t0 = System.currentTimeMillis();
        long deadline = t0 + timeoutMs;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            if (logstash) {
                List<Future<RecordMetadata>> batch = new ArrayList<>(125);
                for (long seq = 0; seq < count; ) {
                    batch.clear();
                    long start = seq;
                    for (; seq < count && seq - start < 125; seq++) {
                        batch.add(producer.send(new ProducerRecord<>(topic, null, value(seq, size))));
                    }
                    for (int i = 0; i < batch.size(); i++) {
                        try {
                            batch.get(i).get(Math.max(1, deadline - System.currentTimeMillis()), TimeUnit.MILLISECONDS);
                            acked.incrementAndGet();
                        } catch (ExecutionException e) {
                            throw new Fail(EXIT_ERROR, "send of seq " + (start + i) + " failed: " + e.getCause());
                        } catch (java.util.concurrent.TimeoutException e) {
                            throw new Fail(EXIT_ERROR, "produce timed out after " + timeoutMs + " ms at seq " + (start + i));
                        } catch (InterruptedException e) {
                            throw new Fail(EXIT_ERROR, "interrupted");
                        }
                    }
                }
            } else {
                for (long seq = 0; seq < count; seq++) {
                    final long s = seq;
                    producer.send(new ProducerRecord<>(topic, key(seq), value(seq, size)), (md, ex) -> {
                        if (ex == null) {
                            acked.incrementAndGet();
                        } else {
                            errors.incrementAndGet();
                            firstError.compareAndSet(null, new RuntimeException("seq " + s + ": " + ex, ex));
                        }
                    });
                    if (firstError.get() != null) break;
                    if ((seq & 0xffff) == 0 && System.currentTimeMillis() > deadline)
                        throw new Fail(EXIT_ERROR, "produce timed out after " + timeoutMs + " ms at seq " + seq);
                }
                producer.flush();
            }
            retries = metric(producer, "record-retry-total");
            errorsMetric = metric(producer, "record-error-total");
        }
        ProduceStats st = new ProduceStats();
        st.millis = Math.max(1, System.currentTimeMillis() - t0);
        st.sent = acked.get();
        if (firstError.get() != null)
            throw new Fail(EXIT_ERROR, errors.get() + " sends failed, first: " + firstError.get().getMessage());
        if (st.sent != count)
            throw new Fail(EXIT_ERROR, "only " + st.sent + " of " + count + " sends acknowledged");
        log("produced %d records in %.1f s (%.0f msg/s); producer metrics: record-retry-total=%.0f record-error-total=%.0f",
            st.sent, st.millis / 1000.0, st.sent * 1000.0 / st.millis, retries, errorsMetric);
        return st;
    }

    static double metric(KafkaProducer<?, ?> p, String name) {
        for (var e : p.metrics().entrySet()) {
            if (e.getKey().name().equals(name) && e.getKey().group().equals("producer-metrics")) {
                Object v = e.getValue().metricValue();
                if (v instanceof Number) return ((Number) v).doubleValue();
            }
        }
        return Double.NaN;
    }

    // ----------------------------------------------------------------- verify

    /**
     * Reads every partition from the baseline to its end offset and checks that
     * seq 0..count-1 each appear exactly once, seqs increase within each partition,
     * offsets increase, and nothing else was appended.
     */
    static void verify(String bootstrap, String topic, long count, int size, boolean expectKey,
                       Map<TopicPartition, Long> from, long timeoutMs, long idleMs) {
        log("verifying %d records in %s via %s", count, topic, bootstrap);
        long t0 = System.currentTimeMillis();
        try (KafkaConsumer<byte[], byte[]> c = newConsumer(bootstrap)) {
            List<TopicPartition> tps = partitions(c, topic, 60_000);
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(30));
            c.assign(tps);
            long expectedTotal = 0;
            for (TopicPartition tp : tps) {
                long start = from == null ? 0L : from.getOrDefault(tp, 0L);
                c.seek(tp, start);
                expectedTotal += end.get(tp) - start;
            }
            if (expectedTotal != count)
                log("NOTE: end offsets say %d new records, expected %d (continuing to read for detail)", expectedTotal, count);

            BitSet seen = new BitSet((int) Math.min(Integer.MAX_VALUE, count));
            Map<Integer, Long> lastSeq = new HashMap<>();
            Map<Integer, Long> lastOffset = new HashMap<>();
            Map<Integer, Long> perPartition = new HashMap<>();
            long received = 0;
            long lastProgress = System.currentTimeMillis();
            java.util.Set<TopicPartition> done = new java.util.HashSet<>();
            while (done.size() < tps.size()) {
                long now = System.currentTimeMillis();
                if (now - t0 > timeoutMs)
                    throw new Fail(EXIT_VERIFY, "verify timed out after " + timeoutMs + " ms with " + received + "/" + count + " records");
                if (now - lastProgress > idleMs)
                    throw new Fail(EXIT_VERIFY, "no records for " + idleMs + " ms; got " + received + "/" + count
                        + " (missing e.g. seq " + seen.nextClearBit(0) + ")");
                ConsumerRecords<byte[], byte[]> recs = c.poll(Duration.ofMillis(500));
                if (!recs.isEmpty()) lastProgress = System.currentTimeMillis();
                for (ConsumerRecord<byte[], byte[]> r : recs) {
                    long seq = decode(r, size, expectKey);
                    String where = topic + "-" + r.partition() + "@" + r.offset();
                    if (seq < 0 || seq >= count)
                        throw new Fail(EXIT_VERIFY, where + ": seq " + seq + " out of range [0," + count + ")");
                    if (seen.get((int) seq))
                        throw new Fail(EXIT_VERIFY, where + ": DUPLICATE seq " + seq);
                    seen.set((int) seq);
                    Long prev = lastSeq.put(r.partition(), seq);
                    if (prev != null && prev >= seq)
                        throw new Fail(EXIT_VERIFY, where + ": OUT OF ORDER seq " + seq + " after " + prev);
                    Long prevOff = lastOffset.put(r.partition(), r.offset());
                    if (prevOff != null && prevOff >= r.offset())
                        throw new Fail(EXIT_VERIFY, where + ": offset went backwards after " + prevOff);
                    perPartition.merge(r.partition(), 1L, Long::sum);
                    received++;
                }
                for (TopicPartition tp : tps) {
                    if (!done.contains(tp) && c.position(tp) >= end.get(tp)) done.add(tp);
                }
            }
            if (received != count) {
                int missing = seen.nextClearBit(0);
                throw new Fail(EXIT_VERIFY, "read " + received + " records, expected " + count
                    + (missing < count ? " (first missing seq " + missing + ")" : ""));
            }
            if (seen.cardinality() != count)
                throw new Fail(EXIT_VERIFY, "saw " + seen.cardinality() + " distinct seqs, expected " + count);
            // Anything appended after the end offsets we sampled would be a stray duplicate.
            Map<TopicPartition, Long> end2 = c.endOffsets(tps, Duration.ofSeconds(30));
            if (!end2.equals(end))
                throw new Fail(EXIT_VERIFY, "end offsets grew during verification: " + end + " -> " + end2);
            long ms = Math.max(1, System.currentTimeMillis() - t0);
            log("verified %d records exactly once, in order per partition, in %.1f s (%.0f msg/s); per partition %s",
                received, ms / 1000.0, received * 1000.0 / ms, new java.util.TreeMap<>(perPartition));
        }
    }

    // ------------------------------------------------------------- subcommands

    static void produceConsume(Args a) {
        String bootstrap = a.req("bootstrap");
        String topic = a.req("topic");
        long count = a.getLong("count", -1);
        if (count <= 0) throw new Fail(EXIT_USAGE, "--count N (N > 0) is required");
        int size = valueSize(a);
        boolean logstash = a.flag("logstash");
        String acks = a.opts.get("acks");
        if (acks != null && !acks.equals("all") && !acks.equals("1") && !acks.equals("-1") && !acks.equals("0"))
            throw new Fail(EXIT_USAGE, "--acks must be all or 1");
        long timeoutMs = a.getLong("timeout-s", 300) * 1000;
        ensureTopic(a, bootstrap, topic);
        Map<TopicPartition, Long> from = baseline(bootstrap, topic, a.flag("from-offsets-zero"));
        produce(bootstrap, topic, count, size, acks, logstash, timeoutMs);
        verify(bootstrap, topic, count, size, !logstash, from, timeoutMs, a.getLong("idle-timeout-s", 30) * 1000);
    }

    static void verifyOnly(Args a) {
        String bootstrap = a.req("bootstrap");
        String topic = a.req("topic");
        long count = a.getLong("count", -1);
        if (count <= 0) throw new Fail(EXIT_USAGE, "--count N (N > 0) is required");
        verify(bootstrap, topic, count, valueSize(a), !a.flag("logstash"), null,
            a.getLong("timeout-s", 300) * 1000, a.getLong("idle-timeout-s", 30) * 1000);
    }

    static int valueSize(Args a) {
        long s = a.getLong("value-size", 100);
        if (s < 24 || s > 1_000_000) throw new Fail(EXIT_USAGE, "--value-size must be in [24, 1000000]");
        return (int) s;
    }

    static void idempotence(Args a) throws Exception {
        String listen = a.req("proxy-listen");
        String target = a.req("target");
        String bootstrap = a.get("bootstrap", listen);
        String topic = a.req("topic");
        long count = a.getLong("count", 1_000_000);
        int size = valueSize(a);
        long timeoutMs = a.getLong("timeout-s", 300) * 1000;
        long cutMin = a.getLong("cut-min-ms", 200), cutMax = a.getLong("cut-max-ms", 500);
        String verifyVia = a.get("verify-via", "proxy");
        if (!verifyVia.equals("proxy") && !verifyVia.equals("target"))
            throw new Fail(EXIT_USAGE, "--verify-via must be proxy or target");

        CuttingProxy proxy = new CuttingProxy(listen, target, cutMin, cutMax);
        proxy.start();
        log("proxy %s -> %s started (cuts every %d-%d ms once enabled)", listen, target, cutMin, cutMax);
        try {
            ensureTopic(a, bootstrap, topic);
            Map<TopicPartition, Long> from = baseline(bootstrap, topic, a.flag("from-offsets-zero"));
            proxy.setCutting(true);
            ProduceStats st;
            try {
                st = produce(bootstrap, topic, count, size, "all", false, timeoutMs);
            } finally {
                proxy.setCutting(false);
            }
            log("during produce the proxy cut %d times (%d connections closed, %d accepted in total)",
                proxy.cuts.get(), proxy.closedConns.get(), proxy.accepted.get());
            if (proxy.cuts.get() == 0 && st.millis > cutMax)
                throw new Fail(EXIT_ERROR, "proxy never cut a connection; test is meaningless");
            String vb = verifyVia.equals("proxy") ? bootstrap : target;
            verify(vb, topic, count, size, true, from, timeoutMs, a.getLong("idle-timeout-s", 30) * 1000);
        } finally {
            proxy.close();
        }
    }

    static void proxyOnly(Args a) throws Exception {
        CuttingProxy proxy = new CuttingProxy(a.req("proxy-listen"), a.req("target"),
            a.getLong("cut-min-ms", 200), a.getLong("cut-max-ms", 500));
        proxy.start();
        boolean cut = a.getLong("cut-min-ms", 200) > 0;
        proxy.setCutting(cut);
        log("proxy %s -> %s running (cutting=%s); Ctrl-C to stop", a.req("proxy-listen"), a.req("target"), cut);
        Thread.currentThread().join();
    }

    static java.net.InetSocketAddress parseHostPort(String hp) {
        int i = hp.lastIndexOf(':');
        if (i <= 0) throw new Fail(EXIT_USAGE, "expected HOST:PORT, got " + hp);
        try {
            return new java.net.InetSocketAddress(hp.substring(0, i), Integer.parseInt(hp.substring(i + 1)));
        } catch (NumberFormatException e) {
            throw new Fail(EXIT_USAGE, "bad port in " + hp);
        }
    }

    // ------------------------------------------------------------------ proxy

    /**
     * Plain-socket TCP proxy. While cutting is enabled a timer thread closes every
     * live connection (client side and broker side, with SO_LINGER 0 so the peers
     * see a reset) at random intervals in [cutMin, cutMax] ms.
     */
    static final class CuttingProxy implements AutoCloseable {
        final java.net.InetSocketAddress listen, target;
        final long cutMin, cutMax;
        final java.net.ServerSocket server;
        final java.util.Set<Conn> live = java.util.concurrent.ConcurrentHashMap.newKeySet();
        final AtomicLong cuts = new AtomicLong(), closedConns = new AtomicLong(), accepted = new AtomicLong();
        volatile boolean cutting, closed;

        final class Conn {
            final java.net.Socket client, upstream;
            Conn(java.net.Socket c, java.net.Socket u) { client = c; upstream = u; }
            void kill() {
                for (java.net.Socket s : new java.net.Socket[] {client, upstream}) {
                    try { s.setSoLinger(true, 0); } catch (Exception ignored) { }
                    try { s.close(); } catch (Exception ignored) { }
                }
                live.remove(this);
            }
        }

        CuttingProxy(String listenHp, String targetHp, long cutMin, long cutMax) throws java.io.IOException {
            this.listen = parseHostPort(listenHp);
            this.target = parseHostPort(targetHp);
            this.cutMin = cutMin;
            this.cutMax = Math.max(cutMin, cutMax);
            this.server = new java.net.ServerSocket();
            this.server.setReuseAddress(true);
            try {
                this.server.bind(listen, 128);
            } catch (java.io.IOException e) {
                throw new Fail(EXIT_ERROR, "proxy cannot listen on " + listenHp + ": " + e.getMessage());
            }
        }

        void setCutting(boolean on) { cutting = on; }

        void start() {
            Thread acceptor = new Thread(this::acceptLoop, "proxy-accept");
            acceptor.setDaemon(true);
            acceptor.start();
            Thread cutter = new Thread(this::cutLoop, "proxy-cutter");
            cutter.setDaemon(true);
            cutter.start();
        }

        void acceptLoop() {
            while (!closed) {
                java.net.Socket c;
                try {
                    c = server.accept();
                } catch (java.io.IOException e) {
                    if (!closed) log("proxy accept failed: %s", e);
                    continue;
                }
                accepted.incrementAndGet();
                java.net.Socket u = new java.net.Socket();
                try {
                    c.setTcpNoDelay(true);
                    u.setTcpNoDelay(true);
                    u.connect(target, 5000);
                } catch (java.io.IOException e) {
                    log("proxy cannot reach %s: %s", target, e.getMessage());
                    try { c.close(); } catch (Exception ignored) { }
                    try { u.close(); } catch (Exception ignored) { }
                    continue;
                }
                Conn conn = new Conn(c, u);
                live.add(conn);
                pump(conn, c, u, "c2s");
                pump(conn, u, c, "s2c");
            }
        }

        void pump(Conn conn, java.net.Socket from, java.net.Socket to, String dir) {
            Thread t = new Thread(() -> {
                byte[] buf = new byte[64 * 1024];
                try {
                    java.io.InputStream in = from.getInputStream();
                    java.io.OutputStream out = to.getOutputStream();
                    int n;
                    while ((n = in.read(buf)) >= 0) out.write(buf, 0, n);
                } catch (java.io.IOException ignored) {
                    // closed by a cut or by a peer
                } finally {
                    conn.kill();
                }
            }, "proxy-" + dir);
            t.setDaemon(true);
            t.start();
        }

        void cutLoop() {
            java.util.Random rnd = new java.util.Random();
            while (!closed) {
                long wait = cutMin + (cutMax > cutMin ? (long) rnd.nextInt((int) (cutMax - cutMin + 1)) : 0);
                sleep(Math.max(10, wait));
                if (!cutting || cutMin <= 0) continue;
                List<Conn> snapshot = new ArrayList<>(live);
                if (snapshot.isEmpty()) continue;
                cuts.incrementAndGet();
                for (Conn c : snapshot) {
                    c.kill();
                    closedConns.incrementAndGet();
                }
            }
        }

        @Override
        public void close() {
            closed = true;
            try { server.close(); } catch (Exception ignored) { }
            for (Conn c : new ArrayList<>(live)) c.kill();
        }
    }
}
