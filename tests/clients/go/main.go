// Command sarama-harness drives a Kafka-protocol broker with the sarama fork
// that Filebeat ships (github.com/elastic/sarama), configured the way
// libbeat's kafka output (libbeat/outputs/kafka/config.go) configures it.
//
//	sarama-harness produce-consume -bootstrap 127.0.0.1:9092 -topic T -count N -version 2.1.0
//
// It produces N keyed messages with an AsyncProducer (gzip, acks=1, hash
// partitioner, Return.Successes), then reads every partition of the topic
// from the oldest offset with a plain (non-group) sarama Consumer and checks
// that every acknowledged message is present exactly once, at the offset the
// producer was told, in send order per partition, with the right key, value,
// headers and timestamp. Exit status 0 means everything matched.
//
//	sarama-harness group-consume -bootstrap 127.0.0.1:9092 -topic T -count N -version 2.1.0
//
// runs sarama ConsumerGroup members joining and leaving one group under load;
// see group.go.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elastic/sarama"
)

type sent struct {
	seq       int
	key       string
	value     string
	timestamp time.Time
	partition int32
	offset    int64
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "produce-consume":
		if err := produceConsume(os.Args[2:]); err != nil {
			log.Printf("FAIL: %v", err)
			os.Exit(1)
		}
		log.Printf("OK")
	case "group-consume":
		if err := groupConsume(os.Args[2:]); err != nil {
			log.Printf("FAIL: %v", err)
			os.Exit(1)
		}
		log.Printf("OK")
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: %s produce-consume -bootstrap HOST:PORT -topic T -count N [-version 1.0.0|2.1.0] [-keys K] [-compression gzip|none|snappy|lz4] [-debug]\n", os.Args[0])
	fmt.Fprintf(os.Stderr, "       %s group-consume -bootstrap HOST:PORT -topic T -count N [-version 2.1.0] [-consumers 3] [-join 1] [-leave 1] [-strategy range|roundrobin|sticky] [-debug]\n", os.Args[0])
	os.Exit(2)
}

// filebeatConfig mirrors newSaramaConfig() in libbeat/outputs/kafka/config.go
// with Filebeat's defaults (defaultConfig()).
func filebeatConfig(version sarama.KafkaVersion, compression sarama.CompressionCodec) *sarama.Config {
	k := sarama.NewConfig()

	timeout := 30 * time.Second // output.kafka.timeout
	k.Net.DialTimeout = timeout
	k.Net.ReadTimeout = timeout
	k.Net.WriteTimeout = timeout
	k.Net.KeepAlive = 0                   // keep_alive
	k.Producer.Timeout = 10 * time.Second // broker_timeout
	k.Producer.CompressionLevel = 4       // compression_level

	k.Metadata.Retry.Max = 3
	k.Metadata.Retry.Backoff = 250 * time.Millisecond
	k.Metadata.RefreshFrequency = 10 * time.Minute
	k.Metadata.Full = false

	k.Producer.MaxMessageBytes = 1000000          // max_message_bytes
	k.Producer.RequiredAcks = sarama.WaitForLocal // required_acks: 1
	k.Producer.Compression = compression          // compression: gzip
	k.Producer.Return.Successes = true
	k.Producer.Return.Errors = true
	k.Producer.Retry.Max = 3 // max_retries

	k.ChannelBufferSize = 256           // channel_buffer_size
	k.Producer.Flush.MaxMessages = 2048 // bulk_max_size

	k.ClientID = "beats"
	k.Version = version
	// Filebeat's default partitioner is "hash" (FNV-1a of the key), which is
	// what sarama's hash partitioner implements.
	k.Producer.Partitioner = sarama.NewHashPartitioner

	// Consumer side (not part of Filebeat, used only to read back).
	k.Consumer.Return.Errors = true
	k.Consumer.Offsets.Initial = sarama.OffsetOldest
	return k
}

func produceConsume(args []string) error {
	fs := flag.NewFlagSet("produce-consume", flag.ExitOnError)
	bootstrap := fs.String("bootstrap", "127.0.0.1:9092", "bootstrap broker host:port (comma separated)")
	topic := fs.String("topic", "", "topic")
	count := fs.Int("count", 10000, "number of messages")
	versionStr := fs.String("version", "2.1.0", "Kafka protocol version sarama assumes (Filebeat output.kafka.version)")
	keys := fs.Int("keys", 97, "number of distinct message keys")
	compressionStr := fs.String("compression", "gzip", "compression codec: none|gzip|snappy|lz4")
	debug := fs.Bool("debug", false, "enable sarama's logger on stderr")
	consumeTimeout := fs.Duration("consume-timeout", 120*time.Second, "give up reading back after this long")
	fs.Parse(args)

	if *topic == "" {
		return errors.New("-topic is required")
	}
	retryLog = &retryWriter{debug: *debug}
	sarama.Logger = log.New(retryLog, "", 0)
	version, err := sarama.ParseKafkaVersion(*versionStr)
	if err != nil {
		return fmt.Errorf("bad -version: %w", err)
	}
	var codec sarama.CompressionCodec
	switch strings.ToLower(*compressionStr) {
	case "none":
		codec = sarama.CompressionNone
	case "gzip":
		codec = sarama.CompressionGZIP
	case "snappy":
		codec = sarama.CompressionSnappy
	case "lz4":
		codec = sarama.CompressionLZ4
	case "zstd":
		codec = sarama.CompressionZSTD
	default:
		return fmt.Errorf("unknown -compression %q", *compressionStr)
	}

	cfg := filebeatConfig(version, codec)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	brokers := strings.Split(*bootstrap, ",")

	// ---------------------------------------------------------------- produce
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		return fmt.Errorf("new client: %w", err)
	}
	defer client.Close()

	producer, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		return fmt.Errorf("new async producer: %w", err)
	}

	msgs := make([]*sent, *count)
	base := time.Now().Truncate(time.Millisecond)
	acked := 0
	var produceErrs []string

	done := make(chan struct{})
	go func() {
		defer close(done)
		for acked+len(produceErrs) < *count {
			select {
			case m := <-producer.Successes():
				s := m.Metadata.(*sent)
				s.partition = m.Partition
				s.offset = m.Offset
				acked++
			case e := <-producer.Errors():
				s := e.Msg.Metadata.(*sent)
				produceErrs = append(produceErrs, fmt.Sprintf("seq %d: %v", s.seq, e.Err))
			}
		}
	}()

	for i := 0; i < *count; i++ {
		s := &sent{
			seq:       i,
			key:       fmt.Sprintf("key-%d", i%*keys),
			value:     fmt.Sprintf(`{"seq":%d,"message":"filebeat-like event %d %s"}`, i, i, strings.Repeat("x", i%50)),
			timestamp: base.Add(time.Duration(i) * time.Millisecond),
			partition: -1,
			offset:    -1,
		}
		msgs[i] = s
		producer.Input() <- &sarama.ProducerMessage{
			Topic:     *topic,
			Key:       sarama.StringEncoder(s.key),
			Value:     sarama.StringEncoder(s.value),
			Headers:   []sarama.RecordHeader{{Key: []byte("seq"), Value: []byte(strconv.Itoa(i))}},
			Timestamp: s.timestamp,
			Metadata:  s,
		}
	}
	<-done
	if err := producer.Close(); err != nil {
		return fmt.Errorf("producer close: %w", err)
	}
	if len(produceErrs) > 0 {
		n := len(produceErrs)
		if n > 10 {
			produceErrs = produceErrs[:10]
		}
		return fmt.Errorf("%d produce errors, first: %s", n, strings.Join(produceErrs, "; "))
	}
	log.Printf("produced %d messages to %s (version %s)", acked, *topic, version)

	// Group the acked messages per partition, in send order.
	perPart := map[int32][]*sent{}
	keyPart := map[string]int32{}
	for _, s := range msgs {
		if s.partition < 0 || s.offset < 0 {
			return fmt.Errorf("seq %d acked without partition/offset (%d/%d)", s.seq, s.partition, s.offset)
		}
		perPart[s.partition] = append(perPart[s.partition], s)
		if p, ok := keyPart[s.key]; ok && p != s.partition {
			return fmt.Errorf("key %s went to partitions %d and %d", s.key, p, s.partition)
		}
		keyPart[s.key] = s.partition
	}
	// Send order per partition. sarama (like Filebeat) keeps up to
	// Net.MaxOpenRequests=5 requests in flight, so a batch that the broker
	// rejects with a retriable error and that is then retried may land after
	// later batches. That is allowed only if sarama actually retried.
	reordered := 0
	for p, list := range perPart {
		for i := 1; i < len(list); i++ {
			if list[i].offset <= list[i-1].offset {
				if reordered == 0 {
					log.Printf("partition %d: seq %d acked at offset %d, after seq %d at offset %d (send order not kept)",
						p, list[i].seq, list[i].offset, list[i-1].seq, list[i-1].offset)
				}
				reordered++
			}
		}
		sort.Slice(list, func(i, j int) bool { return list[i].offset < list[j].offset })
		for i := 1; i < len(list); i++ {
			if list[i].offset == list[i-1].offset {
				return fmt.Errorf("partition %d: seq %d and seq %d both acked at offset %d",
					p, list[i-1].seq, list[i].seq, list[i].offset)
			}
		}
	}
	retries := retryLog.lines()
	for i, l := range retries {
		if i == 20 {
			log.Printf("  ... %d more", len(retries)-20)
			break
		}
		log.Printf("  sarama: %s", l)
	}
	if reordered > 0 {
		if len(retries) == 0 {
			return fmt.Errorf("%d acked messages are out of send order within their partition, and sarama never retried", reordered)
		}
		log.Printf("WARNING: %d messages out of send order after %d sarama retry log lines (allowed: Filebeat does not guarantee order across retries)", reordered, len(retries))
	} else {
		log.Printf("send order kept in every partition (%d sarama retry log lines)", len(retries))
	}

	// ---------------------------------------------------------------- consume
	if err := client.RefreshMetadata(*topic); err != nil {
		return fmt.Errorf("refresh metadata: %w", err)
	}
	partitions, err := client.Partitions(*topic)
	if err != nil {
		return fmt.Errorf("partitions: %w", err)
	}
	sort.Slice(partitions, func(i, j int) bool { return partitions[i] < partitions[j] })
	log.Printf("topic %s has partitions %v; producer used %d of them", *topic, partitions, len(perPart))
	known := map[int32]bool{}
	for _, p := range partitions {
		known[p] = true
	}
	for p := range perPart {
		if !known[p] {
			return fmt.Errorf("producer acked into partition %d which metadata does not list (%v)", p, partitions)
		}
	}
	if len(partitions) > 1 && len(perPart) < 2 && *keys > 1 && *count > 100 {
		return fmt.Errorf("hash partitioner put all %d messages into one of %d partitions", *count, len(partitions))
	}

	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return fmt.Errorf("new consumer: %w", err)
	}
	defer consumer.Close()

	total := 0
	for _, p := range partitions {
		expected := perPart[p]
		oldest, err := client.GetOffset(*topic, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("partition %d: GetOffset(oldest): %w", p, err)
		}
		newest, err := client.GetOffset(*topic, p, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("partition %d: GetOffset(newest): %w", p, err)
		}
		if newest-oldest != int64(len(expected)) {
			return fmt.Errorf("partition %d: log has offsets [%d,%d) = %d records, producer acked %d",
				p, oldest, newest, newest-oldest, len(expected))
		}
		if len(expected) == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(*topic, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("partition %d: ConsumePartition: %w", p, err)
		}
		timeout := time.After(*consumeTimeout)
		i := 0
		for i < len(expected) {
			select {
			case m := <-pc.Messages():
				want := expected[i]
				if err := check(m, want); err != nil {
					pc.Close()
					return fmt.Errorf("partition %d, record #%d: %w", p, i, err)
				}
				i++
			case cerr := <-pc.Errors():
				pc.Close()
				return fmt.Errorf("partition %d: consumer error: %v", p, cerr)
			case <-timeout:
				pc.Close()
				return fmt.Errorf("partition %d: timed out after %d of %d records", p, i, len(expected))
			}
		}
		// Anything more than what we produced would be a duplicate.
		select {
		case m := <-pc.Messages():
			pc.Close()
			return fmt.Errorf("partition %d: unexpected extra record at offset %d key=%s", p, m.Offset, m.Key)
		case <-time.After(500 * time.Millisecond):
		}
		if hwm := pc.HighWaterMarkOffset(); hwm != newest {
			pc.Close()
			return fmt.Errorf("partition %d: consumer high watermark %d, ListOffsets latest %d", p, hwm, newest)
		}
		if err := pc.Close(); err != nil {
			return fmt.Errorf("partition %d: close partition consumer: %w", p, err)
		}
		total += i
		log.Printf("partition %d: verified %d records, offsets [%d,%d)", p, i, oldest, newest)
	}
	if total != *count {
		return fmt.Errorf("verified %d records, expected %d", total, *count)
	}
	log.Printf("verified all %d records exactly once and in order", total)
	return nil
}

var retryLog *retryWriter

// retryWriter receives sarama's log output; it remembers retry-related lines
// and, with -debug, echoes everything to stderr.
type retryWriter struct {
	mu    sync.Mutex
	debug bool
	buf   []string
}

func (w *retryWriter) Write(b []byte) (int, error) {
	line := strings.TrimRight(string(b), "\n")
	if w.debug {
		fmt.Fprintf(os.Stderr, "%s [sarama] %s\n", time.Now().Format("15:04:05.000000"), line)
	}
	if strings.Contains(strings.ToLower(line), "retrying") {
		w.mu.Lock()
		w.buf = append(w.buf, line)
		w.mu.Unlock()
	}
	return len(b), nil
}

func (w *retryWriter) lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.buf...)
}

func check(m *sarama.ConsumerMessage, want *sent) error {
	if m.Offset != want.offset {
		return fmt.Errorf("offset %d, producer was acked seq %d at offset %d", m.Offset, want.seq, want.offset)
	}
	if string(m.Key) != want.key {
		return fmt.Errorf("offset %d: key %q, want %q (seq %d)", m.Offset, m.Key, want.key, want.seq)
	}
	if string(m.Value) != want.value {
		return fmt.Errorf("offset %d: value %q, want %q", m.Offset, m.Value, want.value)
	}
	var seqHdr string
	nh := 0
	for _, h := range m.Headers {
		if h != nil && string(h.Key) == "seq" {
			seqHdr = string(h.Value)
			nh++
		}
	}
	if nh != 1 || seqHdr != strconv.Itoa(want.seq) {
		return fmt.Errorf("offset %d: headers %v, want seq=%d", m.Offset, fmtHeaders(m.Headers), want.seq)
	}
	if !m.Timestamp.Equal(want.timestamp) {
		return fmt.Errorf("offset %d: timestamp %v, want %v", m.Offset, m.Timestamp, want.timestamp)
	}
	return nil
}

func fmtHeaders(hs []*sarama.RecordHeader) string {
	var parts []string
	for _, h := range hs {
		if h == nil {
			parts = append(parts, "<nil>")
			continue
		}
		parts = append(parts, string(h.Key)+"="+string(h.Value))
	}
	return "[" + strings.Join(parts, ",") + "]"
}
