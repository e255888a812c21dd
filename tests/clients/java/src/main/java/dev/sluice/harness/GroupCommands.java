package dev.sluice.harness;

import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Consumer-group subcommands of the harness.
 *
 * <pre>
 * group-consume   --bootstrap B --topic T --count N [--consumers 3] [--join 1] [--leave 1] [--bounce]
 *                 [--group G] [--group-instance-id-prefix P] [--assignor range|cooperative-sticky|...]
 *                 [--group-protocol classic|consumer] [--no-produce]
 * describe-groups --bootstrap B --group G[,G2...]
 * </pre>
 */
final class GroupCommands {
    private GroupCommands() { }

    static void log(String fmt, Object... args) { Harness.log(fmt, args); }

    // ================================================================ group-consume

    /** Shared bookkeeping of one group run. */
    static final class Run {
        final String bootstrap, topic, group;
        final int size;
        final long count;
        final int partitions;
        final boolean consumerProtocol;
        final BitSet seen;
        final AtomicLong distinct = new AtomicLong(), deliveries = new AtomicLong();
        final AtomicLong commitsOk = new AtomicLong(), commitsFailed = new AtomicLong();
        final Map<Integer, Long> committed = new ConcurrentHashMap<>();
        final Map<Integer, String> owners = new ConcurrentHashMap<>();
        final List<String> violations = java.util.Collections.synchronizedList(new ArrayList<>());
        final List<String> commitErrors = java.util.Collections.synchronizedList(new ArrayList<>());
        final List<Member> members = new java.util.concurrent.CopyOnWriteArrayList<>();
        volatile long budget = Long.MAX_VALUE;
        final Properties consumerProps;

        Run(String bootstrap, String topic, String group, long count, int size, int partitions,
            boolean consumerProtocol, Properties consumerProps) {
            this.bootstrap = bootstrap; this.topic = topic; this.group = group; this.count = count;
            this.size = size; this.partitions = partitions; this.consumerProtocol = consumerProtocol;
            this.consumerProps = consumerProps;
            this.seen = new BitSet((int) count);
        }

        void violation(String s) {
            if (violations.size() < 1000) violations.add(s);
            if (violations.size() <= 5) log("VIOLATION: %s", s);
        }

        List<Member> live() {
            List<Member> l = new ArrayList<>();
            for (Member m : members) if (m.isAlive() && !m.stopping) l.add(m);
            return l;
        }

        Map<String, List<Integer>> assignment() {
            Map<String, List<Integer>> a = new TreeMap<>();
            for (Member m : live()) {
                List<Integer> ps = new ArrayList<>(m.owned);
                java.util.Collections.sort(ps);
                a.put(m.name, ps);
            }
            return a;
        }

        Map<String, Integer> marks() {
            Map<String, Integer> m = new HashMap<>();
            for (Member x : members) m.put(x.name, x.assignEvents.get());
            return m;
        }
    }

    static final class Member extends Thread implements ConsumerRebalanceListener {
        final Run run;
        final String name;
        final String instanceId;
        final Set<Integer> owned = ConcurrentHashMap.newKeySet();
        final AtomicInteger assignEvents = new AtomicInteger(), revokeEvents = new AtomicInteger(),
            lostEvents = new AtomicInteger();
        volatile boolean hasAssignment;
        volatile int generation = -1;
        volatile boolean stopping;
        volatile Throwable failed;
        KafkaConsumer<byte[], byte[]> consumer;

        Member(Run run, String name, String instanceId) {
            super("member-" + name);
            setDaemon(true);
            this.run = run; this.name = name; this.instanceId = instanceId;
        }

        @Override public void onPartitionsAssigned(Collection<TopicPartition> parts) {
            for (TopicPartition tp : parts) {
                String prev = run.owners.put(tp.partition(), name);
                if (prev != null && !prev.equals(name))
                    run.violation("partition " + tp.partition() + " assigned to " + name + " while " + prev + " still owns it");
                owned.add(tp.partition());
            }
            try { generation = consumer.groupMetadata().generationId(); } catch (Exception e) { generation = -2; }
            hasAssignment = true;
            assignEvents.incrementAndGet();
        }

        @Override public void onPartitionsRevoked(Collection<TopicPartition> parts) {
            for (TopicPartition tp : parts) { run.owners.remove(tp.partition(), name); owned.remove(tp.partition()); }
            revokeEvents.incrementAndGet();
            // Classic protocols: a revoke is always followed by an assign callback once the
            // member has rejoined. KIP-848 does not call onPartitionsAssigned when nothing new comes.
            if (!run.consumerProtocol) hasAssignment = false;
        }

        @Override public void onPartitionsLost(Collection<TopicPartition> parts) {
            lostEvents.incrementAndGet();
            log("%s: partitions LOST %s", name, parts);
            for (TopicPartition tp : parts) { run.owners.remove(tp.partition(), name); owned.remove(tp.partition()); }
            if (!run.consumerProtocol) hasAssignment = false;
        }

        @Override public void run() {
            Properties p = Harness.baseProps(run.bootstrap);
            p.putAll(run.consumerProps);
            p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
            p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
            p.put(ConsumerConfig.GROUP_ID_CONFIG, run.group);
            p.put(ConsumerConfig.CLIENT_ID_CONFIG, name);
            p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            if (instanceId != null) p.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instanceId);
            try {
                consumer = new KafkaConsumer<>(p);
                consumer.subscribe(List.of(run.topic), this);
                while (!stopping) {
                    boolean wantPause = run.distinct.get() >= run.budget;
                    Set<TopicPartition> asg = consumer.assignment();
                    if (wantPause) {
                        Set<TopicPartition> toPause = new HashSet<>(asg);
                        toPause.removeAll(consumer.paused());
                        if (!toPause.isEmpty()) consumer.pause(toPause);
                    } else if (!consumer.paused().isEmpty()) {
                        consumer.resume(consumer.paused());
                    }
                    ConsumerRecords<byte[], byte[]> recs = consumer.poll(Duration.ofMillis(200));
                    if (recs.isEmpty()) continue;
                    Map<TopicPartition, OffsetAndMetadata> upto = new HashMap<>();
                    for (ConsumerRecord<byte[], byte[]> r : recs) {
                        process(r);
                        upto.merge(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1),
                            (a, b) -> a.offset() >= b.offset() ? a : b);
                    }
                    try {
                        consumer.commitSync(upto, Duration.ofSeconds(30));
                        for (var e : upto.entrySet()) {
                            run.committed.merge(e.getKey().partition(), e.getValue().offset(), Math::max);
                            run.commitsOk.incrementAndGet();
                        }
                    } catch (KafkaException e) {   // CommitFailed, RebalanceInProgress, timeouts...
                        run.commitsFailed.incrementAndGet();
                        if (run.commitErrors.size() < 20) run.commitErrors.add(name + ": " + e);
                    }
                }
            } catch (Throwable t) {
                failed = t;
                log("%s died: %s", name, t);
            } finally {
                if (consumer != null) {
                    try { consumer.close(Duration.ofSeconds(30)); }
                    catch (Throwable t) { if (failed == null) failed = t; }
                }
            }
        }

        void process(ConsumerRecord<byte[], byte[]> r) {
            int p = r.partition();
            long seq = Harness.decode(r, run.size, true);
            run.deliveries.incrementAndGet();
            Long c = run.committed.get(p);
            if (c != null && r.offset() < c)
                run.violation(name + ": record " + p + "@" + r.offset() + " (seq " + seq + ") delivered again although offset "
                    + c + " was committed");
            String owner = run.owners.get(p);
            if (!name.equals(owner))
                run.violation(name + ": got record " + p + "@" + r.offset() + " but partition " + p + " is owned by " + owner);
            if (seq < 0 || seq >= run.count) {
                run.violation(name + ": seq " + seq + " out of range");
                return;
            }
            synchronized (run.seen) {
                if (!run.seen.get((int) seq)) { run.seen.set((int) seq); run.distinct.incrementAndGet(); }
            }
        }

        void shutdown(long timeoutMs) {
            stopping = true;
            try { join(timeoutMs); } catch (InterruptedException e) { Thread.currentThread().interrupt(); }
            if (isAlive()) throw new Harness.Fail(Harness.EXIT_ERROR, "member " + name + " did not close");
            if (failed != null) throw new Harness.Fail(Harness.EXIT_ERROR, "member " + name + " failed: " + failed);
        }
    }

    static Member startMember(Run run, String name, String instanceId) {
        Member m = new Member(run, name, instanceId);
        run.members.add(m);
        m.start();
        return m;
    }

    /**
     * Waits until the group settled after a membership change and returns its assignment.
     * {@code mustReassign}: members that must have had an assign callback since {@code marks}
     * (null = every live member). Classic protocols: all of those were assigned, none is between a
     * revoke and the next assign, all report the same generation, and together they own every
     * partition exactly once. KIP-848 (no generation, no callback when nothing changes): every
     * partition owned exactly once and a balanced assignment, i.e. the balance check is the
     * convergence condition and a failure shows up as a timeout with the last assignment.
     */
    static Map<String, List<Integer>> waitSettled(Run run, Map<String, Integer> marks, Set<String> mustReassign,
                                                  String what, long timeoutMs) {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (true) {
            for (Member m : run.members)
                if (m.failed != null) throw new Harness.Fail(Harness.EXIT_ERROR, "member " + m.name + " failed: " + m.failed);
            if (!run.violations.isEmpty())
                throw new Harness.Fail(Harness.EXIT_VERIFY, "while waiting for " + what + ": " + run.violations.get(0));
            Map<String, List<Integer>> a = settledNow(run, marks, mustReassign);
            if (a != null) {
                log("settled (%s): %s", what, a);
                return a;
            }
            if (System.currentTimeMillis() > deadline)
                throw new Harness.Fail(Harness.EXIT_VERIFY, "group did not settle (" + what + ") within " + timeoutMs
                    + " ms; assignment now " + run.assignment() + ", generations " + generations(run));
            Harness.sleep(100);
        }
    }

    static Map<String, Integer> generations(Run run) {
        Map<String, Integer> g = new TreeMap<>();
        for (Member m : run.live()) g.put(m.name, m.generation);
        return g;
    }

    static Map<String, List<Integer>> settledNow(Run run, Map<String, Integer> marks, Set<String> mustReassign) {
        List<Member> live = run.live();
        if (live.isEmpty()) return null;
        Set<Integer> gens = new HashSet<>();
        for (Member m : live) {
            boolean must = mustReassign == null || mustReassign.contains(m.name);
            if (must && m.assignEvents.get() <= marks.getOrDefault(m.name, 0)) return null;
            if (!run.consumerProtocol && !m.hasAssignment) return null;
            gens.add(m.generation);
        }
        if (!run.consumerProtocol && gens.size() != 1) return null;
        Map<String, List<Integer>> a = run.assignment();
        List<Integer> all = new ArrayList<>();
        for (List<Integer> l : a.values()) all.addAll(l);
        java.util.Collections.sort(all);
        for (int i = 0; i < run.partitions; i++) if (all.size() != run.partitions || all.get(i) != i) return null;
        if (run.consumerProtocol && !balanced(a)) return null;
        return a;
    }

    static boolean balanced(Map<String, List<Integer>> a) {
        int min = Integer.MAX_VALUE, max = 0;
        for (List<Integer> l : a.values()) { min = Math.min(min, l.size()); max = Math.max(max, l.size()); }
        return max - min <= 1;
    }

    static void checkBalanced(Map<String, List<Integer>> a, String what) {
        if (!balanced(a)) throw new Harness.Fail(Harness.EXIT_VERIFY, what + ": unbalanced assignment " + a);
        log("balanced (%s): %s", what, a);
    }

    static void groupConsume(Harness.Args a) {
        String bootstrap = a.req("bootstrap");
        String topic = a.req("topic");
        long count = a.getLong("count", -1);
        if (count <= 0 || count > Integer.MAX_VALUE) throw new Harness.Fail(Harness.EXIT_USAGE, "--count N (N > 0) is required");
        int size = Harness.valueSize(a);
        int consumers = (int) a.getLong("consumers", 3);
        int join = (int) a.getLong("join", 1);
        int leave = (int) a.getLong("leave", 1);
        boolean bounce = a.flag("bounce");
        String group = a.get("group", "hg-" + Long.toHexString(System.nanoTime()));
        String prefix = a.opts.get("group-instance-id-prefix");
        String assignor = a.opts.get("assignor");
        String protocol = a.get("group-protocol", "classic");
        long timeoutMs = a.getLong("timeout-s", 300) * 1000;
        long settleMs = a.getLong("settle-timeout-s", 90) * 1000;
        if (!protocol.equals("classic") && !protocol.equals("consumer"))
            throw new Harness.Fail(Harness.EXIT_USAGE, "--group-protocol must be classic or consumer");
        boolean kip848 = protocol.equals("consumer");
        if (bounce && prefix == null)
            throw new Harness.Fail(Harness.EXIT_USAGE, "--bounce needs --group-instance-id-prefix (static membership)");
        if (consumers < 1 || leave >= consumers + join)
            throw new Harness.Fail(Harness.EXIT_USAGE, "need --consumers >= 1 and --leave < consumers + join");

        Properties cp = new Properties();
        cp.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        cp.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, a.get("max-poll-records", "500"));
        if (assignor != null) {
            if (kip848) {
                cp.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, assignor);     // uniform | range (server side)
            } else {
                String cls;
                switch (assignor) {
                    case "range": cls = "org.apache.kafka.clients.consumer.RangeAssignor"; break;
                    case "roundrobin": cls = "org.apache.kafka.clients.consumer.RoundRobinAssignor"; break;
                    case "sticky": cls = "org.apache.kafka.clients.consumer.StickyAssignor"; break;
                    case "cooperative-sticky": cls = "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"; break;
                    default: throw new Harness.Fail(Harness.EXIT_USAGE, "unknown --assignor " + assignor);
                }
                cp.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, cls);
            }
        }
        if (a.opts.containsKey("consumer-props")) {
            for (String kv : a.opts.get("consumer-props").split(",")) {
                int eq = kv.indexOf('=');
                if (eq <= 0) throw new Harness.Fail(Harness.EXIT_USAGE, "--consumer-props expects k=v[,k=v...]");
                cp.put(kv.substring(0, eq).trim(), kv.substring(eq + 1).trim());
            }
        }

        if (!a.flag("no-produce")) {
            Harness.ensureTopic(a, bootstrap, topic);
            Harness.produce(bootstrap, topic, count, size, null, false, timeoutMs);
        }
        Map<TopicPartition, Long> end;
        int partitions;
        try (KafkaConsumer<byte[], byte[]> c = Harness.newConsumer(bootstrap)) {
            List<TopicPartition> tps = Harness.partitions(c, topic, 60_000);
            partitions = tps.size();
            end = c.endOffsets(tps, Duration.ofSeconds(30));
            Map<TopicPartition, Long> begin = c.beginningOffsets(tps, Duration.ofSeconds(30));
            long total = 0;
            for (TopicPartition tp : tps) total += end.get(tp) - begin.get(tp);
            if (total != count)
                throw new Harness.Fail(Harness.EXIT_ERROR, "topic " + topic + " holds " + total + " records, expected " + count
                    + " (group-consume needs a fresh topic)");
        }
        log("group-consume: group %s, protocol %s, assignor %s, static prefix %s, %d partitions, %d records; %d consumers, +%d join, -%d leave%s",
            group, protocol, assignor == null ? "default" : assignor, prefix, partitions, count, consumers, join, leave,
            bounce ? ", bounce c0" : "");

        Run run = new Run(bootstrap, topic, group, count, size, partitions, kip848, cp);
        List<String> phases = new ArrayList<>();
        int next = 0;
        try {
            // Phase 1: the initial members; consumption pauses at count/4.
            run.budget = count / 4;
            Map<String, Integer> marks = run.marks();
            for (int i = 0; i < consumers; i++, next++)
                startMember(run, "c" + next, prefix == null ? null : prefix + next);
            Map<String, List<Integer>> asg = waitSettled(run, marks, null, consumers + " members", settleMs);
            checkBalanced(asg, "initial");
            phases.add("initial " + asg);

            if (join > 0) {
                marks = run.marks();
                for (int i = 0; i < join; i++, next++)
                    startMember(run, "c" + next, prefix == null ? null : prefix + next);
                run.budget = count / 2;
                asg = waitSettled(run, marks, kip848 ? newNames(run, marks) : null, "after " + join + " joined", settleMs);
                checkBalanced(asg, "after join");
                phases.add("join " + asg);
            }

            if (bounce) {
                // Static membership: restart c0 with the same group.instance.id. The coordinator
                // must hand it its old partitions without a rebalance of the others.
                Member old = run.members.get(0);
                List<Integer> before = new ArrayList<>(asg.get(old.name));
                marks = run.marks();
                Map<String, Integer> revokes = new HashMap<>();
                for (Member m : run.live()) revokes.put(m.name, m.revokeEvents.get());
                run.budget = 5 * count / 8;
                old.shutdown(60_000);
                Member fresh = startMember(run, old.name + "'", old.instanceId);
                asg = waitSettled(run, marks, Set.of(fresh.name), "after static member " + old.instanceId + " restarted", settleMs);
                List<Integer> after = asg.get(fresh.name);
                if (!before.equals(after))
                    throw new Harness.Fail(Harness.EXIT_VERIFY, "static member " + old.instanceId + " had " + before
                        + " before the restart and " + after + " after it");
                for (Member m : run.live()) {
                    if (m == fresh) continue;
                    if (m.revokeEvents.get() != revokes.get(m.name))
                        throw new Harness.Fail(Harness.EXIT_VERIFY, "restarting static member " + old.instanceId
                            + " made " + m.name + " give up partitions (a rebalance); assignment now " + asg);
                }
                phases.add("bounce " + asg);
            }

            if (leave > 0) {
                marks = run.marks();
                run.budget = 3 * count / 4;
                List<Member> live = run.live();
                List<String> gone = new ArrayList<>();
                for (int i = 0; i < leave; i++) {
                    Member m = live.get(1 + i % (live.size() - 1));
                    m.shutdown(60_000);
                    gone.add(m.name);
                    live.remove(m);
                }
                log("closed %s", gone);
                // Under KIP-848 only members that gain partitions get a callback.
                asg = waitSettled(run, marks, kip848 ? Set.of() : null, "after " + gone + " left", settleMs);
                checkBalanced(asg, "after leave");
                phases.add("leave " + asg);
            }

            // Drain.
            run.budget = Long.MAX_VALUE;
            long deadline = System.currentTimeMillis() + timeoutMs;
            while (true) {
                for (Member m : run.members)
                    if (m.failed != null) throw new Harness.Fail(Harness.EXIT_ERROR, "member " + m.name + " failed: " + m.failed);
                boolean done = run.distinct.get() >= count;
                for (var e : end.entrySet())
                    if (run.committed.getOrDefault(e.getKey().partition(), 0L) < e.getValue()) done = false;
                if (done) break;
                if (System.currentTimeMillis() > deadline)
                    throw new Harness.Fail(Harness.EXIT_VERIFY, "timed out: " + run.distinct.get() + "/" + count
                        + " distinct records, committed " + new TreeMap<>(run.committed) + ", end offsets " + end
                        + ", first missing seq " + run.seen.nextClearBit(0) + ", assignment " + run.assignment());
                Harness.sleep(100);
            }
            Map<String, List<Integer>> finalAsg = run.assignment();
            log("final assignment %s", finalAsg);
            checkBalanced(finalAsg, "end");
        } finally {
            for (Member m : run.members) m.stopping = true;
            for (Member m : run.members) {
                try { m.join(60_000); } catch (InterruptedException e) { Thread.currentThread().interrupt(); }
            }
        }
        for (Member m : run.members)
            if (m.failed != null) throw new Harness.Fail(Harness.EXIT_ERROR, "member " + m.name + " failed: " + m.failed);
        if (!run.violations.isEmpty())
            throw new Harness.Fail(Harness.EXIT_VERIFY, run.violations.size() + " violations, first: " + run.violations.subList(0, Math.min(5, run.violations.size())));
        if (run.distinct.get() != count)
            throw new Harness.Fail(Harness.EXIT_VERIFY, "consumed " + run.distinct.get() + " distinct records of " + count);

        // The broker's view of the committed offsets must equal the end offsets.
        try (Admin admin = admin(bootstrap)) {
            Map<TopicPartition, OffsetAndMetadata> got = admin.listConsumerGroupOffsets(group)
                .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
            for (var e : end.entrySet()) {
                OffsetAndMetadata om = got.get(e.getKey());
                if (om == null || om.offset() != e.getValue())
                    throw new Harness.Fail(Harness.EXIT_VERIFY, "committed offset of " + e.getKey() + " is "
                        + (om == null ? "missing" : om.offset()) + ", end offset " + e.getValue());
            }
        } catch (Harness.Fail f) {
            throw f;
        } catch (Exception e) {
            throw new Harness.Fail(Harness.EXIT_ERROR, "listConsumerGroupOffsets: " + e);
        }
        int lost = 0;
        for (Member m : run.members) lost += m.lostEvents.get();
        log("phases: %s", phases);
        log("consumed all %d records; %d deliveries (%d redelivered above a committed offset); %d partition commits ok, "
            + "%d commit calls failed %s; %d lost-partition callbacks; committed offsets = end offsets",
            count, run.deliveries.get(), run.deliveries.get() - count, run.commitsOk.get(), run.commitsFailed.get(),
            run.commitErrors.subList(0, Math.min(3, run.commitErrors.size())), lost);
        System.out.println("PHASES " + String.join(" | ", phases));
        System.out.println("STATS deliveries=" + run.deliveries.get() + " distinct=" + count + " commit_failures="
            + run.commitsFailed.get() + " lost=" + lost);
    }

    static Set<String> newNames(Run run, Map<String, Integer> marks) {
        Set<String> s = new HashSet<>();
        for (Member m : run.members) if (!marks.containsKey(m.name)) s.add(m.name);
        return s;
    }

    static Admin admin(String bootstrap) {
        Properties p = Harness.baseProps(bootstrap);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        return Admin.create(p);
    }

    // ============================================================== describe-groups

    /**
     * Prints one line {@code GROUPS_JSON {...}}: the groups ListGroups returns, and for each
     * --group: state, type, assignor, coordinator, members (id, client id, host, instance id,
     * assignment) and per partition committed offset, end offset and lag.
     */
    static void describeGroups(Harness.Args a) throws Exception {
        String bootstrap = a.req("bootstrap");
        List<String> groups = List.of(a.req("group").split(","));
        StringBuilder j = new StringBuilder("{\"listed\":[");
        try (Admin admin = admin(bootstrap)) {
            Collection<GroupListing> listed = admin.listGroups().all().get(30, TimeUnit.SECONDS);
            boolean first = true;
            for (GroupListing g : listed) {
                if (!first) j.append(',');
                first = false;
                j.append("{\"group\":").append(q(g.groupId()))
                    .append(",\"type\":").append(q(g.type().map(Object::toString).orElse(null)))
                    .append(",\"protocol\":").append(q(g.protocol()))
                    .append(",\"state\":").append(q(g.groupState().map(Object::toString).orElse(null))).append('}');
            }
            j.append("],\"groups\":[");
            Map<String, ConsumerGroupDescription> desc = admin.describeConsumerGroups(groups).all().get(30, TimeUnit.SECONDS);
            first = true;
            for (String gid : groups) {
                ConsumerGroupDescription d = desc.get(gid);
                if (!first) j.append(',');
                first = false;
                j.append("{\"group\":").append(q(gid))
                    .append(",\"state\":").append(q(String.valueOf(d.groupState())))
                    .append(",\"type\":").append(q(String.valueOf(d.type())))
                    .append(",\"assignor\":").append(q(d.partitionAssignor()))
                    .append(",\"coordinator\":").append(d.coordinator() == null ? "null" : String.valueOf(d.coordinator().id()))
                    .append(",\"members\":[");
                boolean fm = true;
                for (MemberDescription m : d.members()) {
                    if (!fm) j.append(',');
                    fm = false;
                    j.append("{\"member_id\":").append(q(m.consumerId()))
                        .append(",\"client_id\":").append(q(m.clientId()))
                        .append(",\"host\":").append(q(m.host()))
                        .append(",\"instance_id\":").append(q(m.groupInstanceId().orElse(null)))
                        .append(",\"assignment\":").append(tps(m.assignment().topicPartitions())).append('}');
                }
                j.append("],\"offsets\":[");
                Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(gid)
                    .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
                Set<TopicPartition> all = new HashSet<>(committed.keySet());
                for (MemberDescription m : d.members()) all.addAll(m.assignment().topicPartitions());
                Map<TopicPartition, OffsetSpec> req = new HashMap<>();
                for (TopicPartition tp : all) req.put(tp, OffsetSpec.latest());
                var ends = admin.listOffsets(req).all().get(30, TimeUnit.SECONDS);
                List<TopicPartition> sorted = new ArrayList<>(all);
                sorted.sort((x, y) -> x.topic().equals(y.topic()) ? Integer.compare(x.partition(), y.partition()) : x.topic().compareTo(y.topic()));
                boolean fo = true;
                for (TopicPartition tp : sorted) {
                    if (!fo) j.append(',');
                    fo = false;
                    OffsetAndMetadata om = committed.get(tp);
                    long endOff = ends.get(tp).offset();
                    j.append("{\"topic\":").append(q(tp.topic())).append(",\"partition\":").append(tp.partition())
                        .append(",\"committed\":").append(om == null ? "null" : String.valueOf(om.offset()))
                        .append(",\"end\":").append(endOff)
                        .append(",\"lag\":").append(om == null ? "null" : String.valueOf(endOff - om.offset())).append('}');
                }
                j.append("]}");
                log("group %s: state %s, %d members, assignor %s", gid, d.groupState(), d.members().size(), d.partitionAssignor());
            }
            j.append("]}");
        }
        System.out.println("GROUPS_JSON " + j);
    }

    static String tps(Set<TopicPartition> s) {
        List<TopicPartition> l = new ArrayList<>(s);
        l.sort((x, y) -> x.topic().equals(y.topic()) ? Integer.compare(x.partition(), y.partition()) : x.topic().compareTo(y.topic()));
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < l.size(); i++) {
            if (i > 0) b.append(',');
            b.append("{\"topic\":").append(q(l.get(i).topic())).append(",\"partition\":").append(l.get(i).partition()).append('}');
        }
        return b.append(']').toString();
    }

    static String q(String s) {
        if (s == null) return "null";
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }
}
