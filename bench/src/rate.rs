//! The fixed-rate schedule, and with it coordinated-omission correction.
//!
//! Message `i` of a producer is *intended* to be sent at `start + i / rate`. The producer asks
//! how many messages are due by now and takes their intended times; when it falls behind
//! (waiting for an in-flight slot, a slow broker) the intended times do not move, so a
//! latency measured from the intended time includes the time the message should already
//! have been on its way. That is the correction: a stalled system cannot hide its stall by
//! also stalling the load generator.

/// Lives on: the producer's executor (plain data, no sharing).
#[derive(Debug, Clone)]
pub struct Schedule {
    start_us: u64,
    interval_ns: f64,
    issued: u64,
}

impl Schedule {
    /// `rate_msgs_per_s` must be positive (the workload validation guarantees it).
    pub fn new(start_us: u64, rate_msgs_per_s: f64) -> Schedule {
        assert!(rate_msgs_per_s > 0.0 && rate_msgs_per_s.is_finite());
        Schedule {
            start_us,
            interval_ns: 1e9 / rate_msgs_per_s,
            issued: 0,
        }
    }

    /// Intended send time of message `i`, in µs.
    pub fn intended_us(&self, i: u64) -> u64 {
        self.start_us + ((i as f64) * self.interval_ns / 1000.0) as u64
    }

    /// How many messages are due at `now_us` (intended time <= now) and not yet issued.
    pub fn due(&self, now_us: u64) -> u64 {
        if now_us < self.start_us {
            return 0;
        }
        // An estimate from the rate, then made exact against `intended_us` (float rounding
        // must not make a message due before its own intended time or vice versa).
        let elapsed_ns = (now_us - self.start_us) as f64 * 1000.0;
        let mut total = (elapsed_ns / self.interval_ns).floor() as u64 + 1;
        while self.intended_us(total) <= now_us {
            total += 1;
        }
        while total > 0 && self.intended_us(total - 1) > now_us {
            total -= 1;
        }
        total.saturating_sub(self.issued)
    }

    /// Takes the next message: returns its intended send time.
    pub fn issue(&mut self) -> u64 {
        let t = self.intended_us(self.issued);
        self.issued += 1;
        t
    }

    /// When the next (not yet issued) message is due.
    pub fn next_due_us(&self) -> u64 {
        self.intended_us(self.issued)
    }

    #[cfg(test)]
    pub fn issued(&self) -> u64 {
        self.issued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_exactly_the_rate() {
        let mut s = Schedule::new(1_000_000, 1000.0);
        assert_eq!(s.due(999_999), 0);
        assert_eq!(s.due(1_000_000), 1); // message 0 is due at start
        let mut n = 0;
        // Poll every 7 ms for one second: 1000 messages, whatever the polling pattern.
        let mut now = 1_000_000;
        while now < 2_000_000 {
            for _ in 0..s.due(now) {
                s.issue();
                n += 1;
            }
            now += 7_000;
        }
        for _ in 0..s.due(1_999_999) {
            s.issue();
            n += 1;
        }
        assert_eq!(n, 1000);
        assert_eq!(s.next_due_us(), 2_000_000);
    }

    #[test]
    fn intended_times_do_not_slip_when_the_producer_stalls() {
        // Coordinated omission: the producer was blocked for 500 ms. The 500 messages due in
        // that window keep their intended times, 1 ms apart, not the time they were issued.
        let mut s = Schedule::new(0, 1000.0);
        assert_eq!(s.issue(), 0);
        let due = s.due(500_000);
        assert_eq!(due, 500);
        let times: Vec<u64> = (0..due).map(|_| s.issue()).collect();
        assert_eq!(times[0], 1_000);
        assert_eq!(times[499], 500_000);
        // A message acknowledged at 501 ms that was intended at 1 ms has 500 ms latency.
        let ack_us = 501_000;
        assert_eq!(ack_us - times[0], 500_000);
    }

    #[test]
    fn fractional_rates() {
        let mut s = Schedule::new(0, 3.0);
        assert_eq!(s.issue(), 0);
        assert_eq!(s.issue(), 333_333);
        assert_eq!(s.issue(), 666_666);
        assert_eq!(s.due(999_999), 0);
        assert_eq!(s.due(1_000_000), 1);
        assert_eq!(s.issued(), 3);
    }
}
