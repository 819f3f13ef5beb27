//! Token buckets for reconnect and login rates.

use crate::Time;
use crate::policy::Rate;

/// A token bucket that starts full. Sixteen bytes, so one per source or
/// user is cheap.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    tokens: f64,
    updated: Time,
}

impl Bucket {
    pub fn full(rate: &Rate, now: Time) -> Bucket {
        Bucket { tokens: f64::from(rate.burst), updated: now }
    }

    fn refill(&mut self, rate: &Rate, now: Time) {
        let elapsed = now.seconds_since(self.updated);
        self.tokens = (self.tokens + elapsed * rate.per_second).min(f64::from(rate.burst));
        self.updated = self.updated.max(now);
    }

    /// Takes a token if one is there; otherwise returns the seconds until
    /// one will be.
    pub fn take(&mut self, rate: &Rate, now: Time) -> Result<(), f64> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - self.tokens) / rate.per_second)
        }
    }

    /// Takes a token that is not there yet, to be used after the returned
    /// wait in seconds, as long as that wait is at most `wait_max`.
    pub fn borrow(&mut self, rate: &Rate, now: Time, wait_max: f64) -> Option<f64> {
        self.refill(rate, now);
        let wait = (1.0 - self.tokens) / rate.per_second;
        if wait > wait_max {
            return None;
        }
        self.tokens -= 1.0;
        Some(wait.max(0.0))
    }

    /// Checks whether the bucket is full again, so it can be forgotten.
    pub fn is_full(&self, rate: &Rate, now: Time) -> bool {
        let mut copy = *self;
        copy.refill(rate, now);
        copy.tokens >= f64::from(rate.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let rate = Rate { per_second: 1.0, burst: 3 };
        let start = Time::from_millis(0);
        let mut bucket = Bucket::full(&rate, start);
        for _ in 0..3 {
            assert!(bucket.take(&rate, start).is_ok());
        }
        let wait = bucket.take(&rate, start).unwrap_err();
        assert!((wait - 1.0).abs() < 1e-9, "{wait}");
        assert!(bucket.take(&rate, Time::from_millis(1000)).is_ok());
        assert!(!bucket.is_full(&rate, Time::from_millis(1000)));
        assert!(bucket.is_full(&rate, Time::from_millis(4000)));
    }

    #[test]
    fn borrow_respects_wait_max() {
        let rate = Rate { per_second: 2.0, burst: 1 };
        let start = Time::from_millis(0);
        let mut bucket = Bucket::full(&rate, start);
        assert_eq!(bucket.borrow(&rate, start, 1.0), Some(0.0));
        assert_eq!(bucket.borrow(&rate, start, 1.0), Some(0.5));
        assert_eq!(bucket.borrow(&rate, start, 1.0), Some(1.0));
        assert_eq!(bucket.borrow(&rate, start, 1.0), None);
    }
}
