package main

// group-consume: sarama's ConsumerGroup (the API Beats' kafka input uses),
// several members in one group in goroutines, members joining and leaving
// while data is still flowing.
//
//	sarama-harness group-consume -bootstrap B -topic T -count N [-version 2.1.0]
//	    [-consumers 3] [-join 1] [-leave 1] [-strategy range|roundrobin|sticky]
//
// It produces N records (value "gv-%010d", key "gk-%d") into the topic, which
// must be new (the test creates it with the partition count it wants), then
// consumes them. Each member marks every processed message and calls
// session.Commit() after each batch (auto-commit off); after the commit it
// reads the committed offsets back from the coordinator (OffsetFetch) and
// only then counts them as committed. Checks:
//   - every record consumed, with the value and key that were produced;
//   - no record below an offset the coordinator reported as committed is
//     delivered again;
//   - no partition is claimed by a member while another member still holds it
//     (Setup/Cleanup bracket a member's claims);
//   - after each membership change, once every live member has started a
//     session of the same generation, all partitions are claimed exactly once
//     and the members' partition counts differ by at most one;
//   - at the end the committed offsets equal the end offsets.
//
// Consumption stops at count/4, count/2 and 3*count/4 until the group has
// settled after the corresponding membership change.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elastic/sarama"
)

type groupRun struct {
	topic      string
	group      string
	count      int
	partitions int
	version    sarama.KafkaVersion
	admin      sarama.Client // OffsetFetch / ListOffsets, not a member

	mu          sync.Mutex
	seen        []bool
	distinct    int64 // atomic
	deliveries  int64 // atomic
	committed   map[int32]int64
	owners      map[int32]string
	violations  []string
	commitOK    int64
	commitFails []string
	budget      int64 // atomic
	members     []*member
}

type member struct {
	run      *groupRun
	name     string
	cg       sarama.ConsumerGroup
	cancel   context.CancelFunc
	done     chan struct{}
	commitMu sync.Mutex

	mu            sync.Mutex
	owned         map[int32]bool
	assignEvents  int
	hasAssignment bool
	generation    int32
	stopping      bool
	err           error
}

func (r *groupRun) violation(format string, a ...interface{}) {
	s := fmt.Sprintf(format, a...)
	r.mu.Lock()
	if len(r.violations) < 1000 {
		r.violations = append(r.violations, s)
	}
	n := len(r.violations)
	r.mu.Unlock()
	if n <= 5 {
		log.Printf("VIOLATION: %s", s)
	}
}

// ---- ConsumerGroupHandler

func (m *member) Setup(s sarama.ConsumerGroupSession) error {
	parts := s.Claims()[m.run.topic]
	r := m.run
	r.mu.Lock()
	for _, p := range parts {
		if o, ok := r.owners[p]; ok && o != m.name {
			r.violations = append(r.violations, fmt.Sprintf("partition %d claimed by %s (generation %d) while %s still holds it", p, m.name, s.GenerationID(), o))
		}
		r.owners[p] = m.name
	}
	r.mu.Unlock()
	m.mu.Lock()
	m.owned = map[int32]bool{}
	for _, p := range parts {
		m.owned[p] = true
	}
	m.generation = s.GenerationID()
	m.assignEvents++
	m.hasAssignment = true
	m.mu.Unlock()
	return nil
}

func (m *member) Cleanup(s sarama.ConsumerGroupSession) error {
	r := m.run
	m.mu.Lock()
	owned := m.owned
	m.owned = map[int32]bool{}
	m.hasAssignment = false
	m.mu.Unlock()
	r.mu.Lock()
	for p := range owned {
		if r.owners[p] == m.name {
			delete(r.owners, p)
		}
	}
	r.mu.Unlock()
	return nil
}

func (m *member) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	r := m.run
	var last *sarama.ConsumerMessage
	pending := 0
	flush := func() {
		if last != nil {
			m.commit(s, last)
			last, pending = nil, 0
		}
	}
	defer flush()
	for {
		if atomic.LoadInt64(&r.distinct) >= atomic.LoadInt64(&r.budget) {
			flush()
			select {
			case <-s.Context().Done():
				return nil
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		select {
		case <-s.Context().Done():
			return nil
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			m.process(msg)
			s.MarkMessage(msg, "")
			last = msg
			pending++
			if pending >= 500 || len(claim.Messages()) == 0 {
				flush()
			}
		}
	}
}

func (m *member) process(msg *sarama.ConsumerMessage) {
	r := m.run
	atomic.AddInt64(&r.deliveries, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	p := msg.Partition
	if c, ok := r.committed[p]; ok && msg.Offset < c {
		r.violations = append(r.violations, fmt.Sprintf("%s: record %d@%d delivered again although offset %d was committed", m.name, p, msg.Offset, c))
	}
	if o := r.owners[p]; o != m.name {
		r.violations = append(r.violations, fmt.Sprintf("%s: got record %d@%d but partition %d is held by %q", m.name, p, msg.Offset, p, o))
	}
	var seq int
	if _, err := fmt.Sscanf(string(msg.Value), "gv-%010d", &seq); err != nil || seq < 0 || seq >= r.count {
		r.violations = append(r.violations, fmt.Sprintf("%s: record %d@%d has unexpected value %q", m.name, p, msg.Offset, msg.Value))
		return
	}
	if string(msg.Value) != groupValue(seq) || string(msg.Key) != groupKey(seq) {
		r.violations = append(r.violations, fmt.Sprintf("%s: record %d@%d key %q value %q do not match seq %d", m.name, p, msg.Offset, msg.Key, msg.Value, seq))
	}
	if !r.seen[seq] {
		r.seen[seq] = true
		atomic.AddInt64(&r.distinct, 1)
	}
}

// commit flushes the marked offsets (session.Commit is synchronous), then asks
// the coordinator what is committed for the partition and records that.
func (m *member) commit(s sarama.ConsumerGroupSession, last *sarama.ConsumerMessage) {
	r := m.run
	m.commitMu.Lock()
	defer m.commitMu.Unlock()
	s.Commit()
	got, err := r.fetchCommitted(last.Partition)
	if err != nil {
		r.mu.Lock()
		r.commitFails = append(r.commitFails, fmt.Sprintf("%s: OffsetFetch %d: %v", m.name, last.Partition, err))
		r.mu.Unlock()
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if got < last.Offset+1 {
		// The commit did not go through (e.g. a rebalance started); redelivery allowed.
		r.commitFails = append(r.commitFails, fmt.Sprintf("%s: partition %d committed %d after marking %d", m.name, last.Partition, got, last.Offset+1))
		return
	}
	r.commitOK++
	if got > r.committed[last.Partition] {
		r.committed[last.Partition] = got
	}
}

func (r *groupRun) fetchCommitted(p int32) (int64, error) {
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		if attempt > 0 {
			time.Sleep(250 * time.Millisecond)
			_ = r.admin.RefreshCoordinator(r.group)
		}
		coord, err := r.admin.Coordinator(r.group)
		if err != nil {
			lastErr = err
			continue
		}
		req := sarama.NewOffsetFetchRequest(r.version, r.group, map[string][]int32{r.topic: {p}})
		resp, err := coord.FetchOffset(req)
		if err != nil {
			lastErr = err
			continue
		}
		if resp.Err != sarama.ErrNoError {
			lastErr = resp.Err
			continue
		}
		b := resp.GetBlock(r.topic, p)
		if b == nil {
			return 0, fmt.Errorf("no block for partition %d", p)
		}
		if b.Err != sarama.ErrNoError {
			lastErr = b.Err
			continue
		}
		return b.Offset, nil
	}
	return 0, lastErr
}

// ---- members

func (r *groupRun) startMember(name string, bootstrap []string, strategy sarama.BalanceStrategy) (*member, error) {
	cfg := sarama.NewConfig()
	cfg.Version = r.version
	cfg.ClientID = name
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{strategy}
	cg, err := sarama.NewConsumerGroup(bootstrap, r.group, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: new consumer group: %w", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{run: r, name: name, cg: cg, cancel: cancel, done: make(chan struct{}), owned: map[int32]bool{}}
	r.mu.Lock()
	r.members = append(r.members, m)
	r.mu.Unlock()
	go func() {
		for e := range cg.Errors() {
			r.mu.Lock()
			if len(r.commitFails) < 100 {
				r.commitFails = append(r.commitFails, fmt.Sprintf("%s: %v", name, e))
			}
			r.mu.Unlock()
		}
	}()
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{r.topic}, m); err != nil {
				if errors.Is(err, sarama.ErrClosedConsumerGroup) {
					return
				}
				log.Printf("%s: Consume: %v (retrying)", name, err)
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
		}
	}()
	return m, nil
}

// stop ends the member's session, then Close() sends LeaveGroup.
func (m *member) stop() error {
	m.mu.Lock()
	m.stopping = true
	m.mu.Unlock()
	m.cancel()
	select {
	case <-m.done:
	case <-time.After(60 * time.Second):
		return fmt.Errorf("%s: session did not end within 60s", m.name)
	}
	return m.cg.Close()
}

func (r *groupRun) live() []*member {
	r.mu.Lock()
	defer r.mu.Unlock()
	var l []*member
	for _, m := range r.members {
		m.mu.Lock()
		if !m.stopping {
			l = append(l, m)
		}
		m.mu.Unlock()
	}
	return l
}

func (r *groupRun) marks() map[string]int {
	out := map[string]int{}
	for _, m := range r.live() {
		m.mu.Lock()
		out[m.name] = m.assignEvents
		m.mu.Unlock()
	}
	return out
}

func (r *groupRun) assignment() map[string][]int32 {
	a := map[string][]int32{}
	for _, m := range r.live() {
		m.mu.Lock()
		ps := []int32{}
		for p := range m.owned {
			ps = append(ps, p)
		}
		m.mu.Unlock()
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		a[m.name] = ps
	}
	return a
}

func fmtAssignment(a map[string][]int32) string {
	names := make([]string, 0, len(a))
	for n := range a {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s=%v", n, a[n]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// settled: every live member started a session after the marks, all of the
// same generation and none is between sessions, and together they claim every
// partition exactly once.
func (r *groupRun) settled(marks map[string]int) (map[string][]int32, bool) {
	live := r.live()
	if len(live) == 0 {
		return nil, false
	}
	gens := map[int32]bool{}
	for _, m := range live {
		m.mu.Lock()
		ok := m.assignEvents > marks[m.name] && m.hasAssignment
		gens[m.generation] = true
		m.mu.Unlock()
		if !ok {
			return nil, false
		}
	}
	if len(gens) != 1 {
		return nil, false
	}
	a := r.assignment()
	var all []int32
	for _, ps := range a {
		all = append(all, ps...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) != r.partitions {
		return nil, false
	}
	for i, p := range all {
		if int(p) != i {
			return nil, false
		}
	}
	return a, true
}

func (r *groupRun) waitSettled(marks map[string]int, what string, timeout time.Duration) (map[string][]int32, error) {
	deadline := time.Now().Add(timeout)
	for {
		r.mu.Lock()
		nv := len(r.violations)
		var first string
		if nv > 0 {
			first = r.violations[0]
		}
		r.mu.Unlock()
		if nv > 0 {
			return nil, fmt.Errorf("while waiting for %s: %s", what, first)
		}
		if a, ok := r.settled(marks); ok {
			log.Printf("settled (%s): %s", what, fmtAssignment(a))
			return a, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("group did not settle (%s) within %v; assignment now %s", what, timeout, fmtAssignment(r.assignment()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func checkBalanced(a map[string][]int32, what string) error {
	min, max := 1<<30, 0
	for _, ps := range a {
		if len(ps) < min {
			min = len(ps)
		}
		if len(ps) > max {
			max = len(ps)
		}
	}
	if max-min > 1 {
		return fmt.Errorf("%s: unbalanced assignment %s", what, fmtAssignment(a))
	}
	return nil
}

func groupValue(seq int) string { return fmt.Sprintf("gv-%010d", seq) }
func groupKey(seq int) string   { return fmt.Sprintf("gk-%d", seq) }

func groupConsume(args []string) error {
	fs := flag.NewFlagSet("group-consume", flag.ExitOnError)
	bootstrapStr := fs.String("bootstrap", "127.0.0.1:9092", "bootstrap broker host:port (comma separated)")
	topic := fs.String("topic", "", "topic (new; create it with the partition count you want)")
	count := fs.Int("count", 100000, "records to produce and consume")
	versionStr := fs.String("version", "2.1.0", "Kafka protocol version sarama assumes")
	group := fs.String("group", "", "group id (default: random)")
	consumers := fs.Int("consumers", 3, "initial members")
	join := fs.Int("join", 1, "members joining after count/4 records")
	leave := fs.Int("leave", 1, "members leaving after count/2 records")
	strategyStr := fs.String("strategy", "range", "range|roundrobin|sticky")
	settleTimeout := fs.Duration("settle-timeout", 90*time.Second, "bound on each wait for the group to settle")
	timeout := fs.Duration("timeout", 300*time.Second, "bound on draining the topic")
	debug := fs.Bool("debug", false, "sarama logger on stderr")
	fs.Parse(args)
	if *topic == "" {
		return errors.New("-topic is required")
	}
	if *consumers < 1 || *leave >= *consumers+*join {
		return errors.New("need -consumers >= 1 and -leave < consumers + join")
	}
	if *group == "" {
		*group = fmt.Sprintf("sg-%d", time.Now().UnixNano())
	}
	retryLog = &retryWriter{debug: *debug}
	sarama.Logger = log.New(retryLog, "", 0)
	version, err := sarama.ParseKafkaVersion(*versionStr)
	if err != nil {
		return fmt.Errorf("bad -version: %w", err)
	}
	var strategy sarama.BalanceStrategy
	switch *strategyStr {
	case "range":
		strategy = sarama.NewBalanceStrategyRange()
	case "roundrobin":
		strategy = sarama.NewBalanceStrategyRoundRobin()
	case "sticky":
		strategy = sarama.NewBalanceStrategySticky()
	default:
		return fmt.Errorf("unknown -strategy %q", *strategyStr)
	}
	bootstrap := strings.Split(*bootstrapStr, ",")

	// ---- produce (Filebeat's producer settings, uncompressed)
	pcfg := filebeatConfig(version, sarama.CompressionNone)
	client, err := sarama.NewClient(bootstrap, pcfg)
	if err != nil {
		return fmt.Errorf("new client: %w", err)
	}
	defer client.Close()
	producer, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		return fmt.Errorf("new producer: %w", err)
	}
	var produceErrs []string
	acked := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for acked+len(produceErrs) < *count {
			select {
			case <-producer.Successes():
				acked++
			case e := <-producer.Errors():
				produceErrs = append(produceErrs, e.Err.Error())
			}
		}
	}()
	for i := 0; i < *count; i++ {
		producer.Input() <- &sarama.ProducerMessage{Topic: *topic, Key: sarama.StringEncoder(groupKey(i)), Value: sarama.StringEncoder(groupValue(i))}
	}
	<-done
	if err := producer.Close(); err != nil {
		return fmt.Errorf("producer close: %w", err)
	}
	if len(produceErrs) > 0 {
		return fmt.Errorf("%d produce errors, first: %s", len(produceErrs), produceErrs[0])
	}
	if err := client.RefreshMetadata(*topic); err != nil {
		return fmt.Errorf("refresh metadata: %w", err)
	}
	parts, err := client.Partitions(*topic)
	if err != nil {
		return fmt.Errorf("partitions: %w", err)
	}
	end := map[int32]int64{}
	total := int64(0)
	for _, p := range parts {
		o, err := client.GetOffset(*topic, p, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("partition %d: GetOffset: %w", p, err)
		}
		b, err := client.GetOffset(*topic, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("partition %d: GetOffset: %w", p, err)
		}
		end[p] = o
		total += o - b
	}
	if total != int64(*count) {
		return fmt.Errorf("topic holds %d records, expected %d (group-consume needs a new topic)", total, *count)
	}
	log.Printf("produced %d records into %s (%d partitions, end offsets %v); group %s, version %s, strategy %s",
		*count, *topic, len(parts), end, *group, version, *strategyStr)

	r := &groupRun{topic: *topic, group: *group, count: *count, partitions: len(parts), version: version,
		admin: client, seen: make([]bool, *count), committed: map[int32]int64{}, owners: map[int32]string{}}
	defer func() {
		for _, m := range r.live() {
			_ = m.stop()
		}
	}()
	next := 0
	add := func(n int) error {
		for i := 0; i < n; i++ {
			if _, err := r.startMember(fmt.Sprintf("m%d", next), bootstrap, strategy); err != nil {
				return err
			}
			next++
		}
		return nil
	}
	var phases []string

	atomic.StoreInt64(&r.budget, int64(*count/4))
	marks := r.marks()
	if err := add(*consumers); err != nil {
		return err
	}
	a, err := r.waitSettled(marks, fmt.Sprintf("%d members", *consumers), *settleTimeout)
	if err != nil {
		return err
	}
	if err := checkBalanced(a, "initial"); err != nil {
		return err
	}
	phases = append(phases, "initial "+fmtAssignment(a))

	if *join > 0 {
		marks = r.marks()
		if err := add(*join); err != nil {
			return err
		}
		atomic.StoreInt64(&r.budget, int64(*count/2))
		if a, err = r.waitSettled(marks, fmt.Sprintf("%d joined", *join), *settleTimeout); err != nil {
			return err
		}
		if err := checkBalanced(a, "after join"); err != nil {
			return err
		}
		phases = append(phases, "join "+fmtAssignment(a))
	}
	if *leave > 0 {
		marks = r.marks()
		atomic.StoreInt64(&r.budget, int64(3**count/4))
		live := r.live()
		var gone []string
		for i := 0; i < *leave; i++ {
			m := live[1+i]
			if err := m.stop(); err != nil {
				return fmt.Errorf("%s: close: %w", m.name, err)
			}
			gone = append(gone, m.name)
		}
		if a, err = r.waitSettled(marks, fmt.Sprintf("%v left", gone), *settleTimeout); err != nil {
			return err
		}
		if err := checkBalanced(a, "after leave"); err != nil {
			return err
		}
		phases = append(phases, "leave "+fmtAssignment(a))
	}

	atomic.StoreInt64(&r.budget, 1<<62)
	deadline := time.Now().Add(*timeout)
	for {
		r.mu.Lock()
		ok := atomic.LoadInt64(&r.distinct) >= int64(*count)
		for p, e := range end {
			if e > 0 && r.committed[p] < e {
				ok = false
			}
		}
		nv := len(r.violations)
		comm := fmt.Sprint(r.committed)
		r.mu.Unlock()
		if ok || nv > 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out: %d/%d distinct records, committed %s, end %v, assignment %s",
				atomic.LoadInt64(&r.distinct), *count, comm, end, fmtAssignment(r.assignment()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, m := range r.live() {
		if err := m.stop(); err != nil {
			return fmt.Errorf("%s: close: %w", m.name, err)
		}
	}
	r.mu.Lock()
	violations := append([]string(nil), r.violations...)
	r.mu.Unlock()
	if len(violations) > 0 {
		n := len(violations)
		if n > 10 {
			n = 10
		}
		return fmt.Errorf("%d violations, first: %s", len(violations), strings.Join(violations[:n], "\n  "))
	}
	// Read the committed offsets back once more.
	for p, e := range end {
		got, err := r.fetchCommitted(p)
		if err != nil {
			return fmt.Errorf("final OffsetFetch %d: %w", p, err)
		}
		if got != e && !(e == 0 && got < 0) {
			return fmt.Errorf("partition %d: committed offset %d, end offset %d", p, got, e)
		}
	}
	r.mu.Lock()
	fails := append([]string(nil), r.commitFails...)
	commitOK := r.commitOK
	r.mu.Unlock()
	nfails := len(fails)
	if len(fails) > 3 {
		fails = fails[:3]
	}
	log.Printf("phases: %s", strings.Join(phases, " | "))
	log.Printf("consumed all %d records; %d deliveries (%d redelivered above a committed offset), %d commits confirmed, %d not confirmed %v; committed offsets = end offsets",
		*count, atomic.LoadInt64(&r.deliveries), atomic.LoadInt64(&r.deliveries)-int64(*count), commitOK, nfails, fails)
	fmt.Printf("PHASES %s\n", strings.Join(phases, " | "))
	return nil
}
