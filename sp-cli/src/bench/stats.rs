//! Latency histograms and summaries over repetitions.

use serde_json::{json, Value};

/// Sub-buckets per power of two: values are kept to about 3 %.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Values below this are kept exactly.
const LINEAR: u64 = 2 * SUB;
/// Buckets needed for every `u64`.
const BUCKETS: usize = (LINEAR + (64 - 6) * SUB) as usize;

/// A log-linear histogram of nanosecond latencies: exact below 64 ns, then
/// 32 buckets per power of two. Small enough to send as one JSON line and
/// to merge across client processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hist {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Hist {
    fn default() -> Hist {
        Hist::new()
    }
}

fn bucket(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = 63 - u64::from(v.leading_zeros()); // >= 6
    let sub = (v >> (e - u64::from(SUB_BITS))) - SUB;
    (LINEAR + (e - 6) * SUB + sub) as usize
}

/// The middle of bucket `i`.
fn bucket_value(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let k = i - LINEAR;
    let e = 6 + k / SUB;
    let width = 1u64 << (e - u64::from(SUB_BITS));
    let lo = (SUB + k % SUB) << (e - u64::from(SUB_BITS));
    lo + width / 2
}

impl Hist {
    /// An empty histogram.
    pub fn new() -> Hist {
        Hist {
            counts: vec![0; BUCKETS],
            total: 0,
        }
    }

    /// Counts one value.
    pub fn record(&mut self, ns: u64) {
        self.counts[bucket(ns)] += 1;
        self.total += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0.0..=1.0), within the bucket precision;
    /// 0 for an empty histogram.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_value(i);
            }
        }
        bucket_value(BUCKETS - 1)
    }

    /// Sparse JSON form: `[[bucket, count], ...]`.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.counts
                .iter()
                .enumerate()
                .filter(|(_, &c)| c > 0)
                .map(|(i, &c)| json!([i, c]))
                .collect(),
        )
    }

    /// Reads the form [`Hist::to_json`] writes; `None` if malformed.
    pub fn from_json(v: &Value) -> Option<Hist> {
        let mut h = Hist::new();
        for pair in v.as_array()? {
            let i = usize::try_from(pair.get(0)?.as_u64()?).ok()?;
            let c = pair.get(1)?.as_u64()?;
            *h.counts.get_mut(i)? += c;
            h.total += c;
        }
        Some(h)
    }
}

/// The median of `v` (sorted in place); 0 for an empty slice. An even
/// count takes the mean of the middle two.
pub fn median_u64(v: &mut [u64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] as f64 + v[n / 2] as f64) / 2.0
    }
}

/// Median, minimum and maximum of one figure over the repetitions.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Median of the per-repetition values.
    pub median: f64,
    /// Smallest per-repetition value.
    pub min: f64,
    /// Largest per-repetition value.
    pub max: f64,
    /// Every per-repetition value, in the order measured.
    pub values: Vec<f64>,
}

impl Summary {
    /// Summarises per-repetition values; `None` if there are none.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut s = values.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Summary {
            median,
            min: s[0],
            max: s[n - 1],
            values: values.to_vec(),
        })
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "values": self.values,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_close() {
        let mut last = 0;
        for v in (0..200_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let b = bucket(v);
            assert!(b >= last, "{v}");
            assert!(b < BUCKETS);
            last = b;
            let mid = bucket_value(b) as f64;
            assert!(
                (mid - v as f64).abs() <= v as f64 * 0.04 + 1.0,
                "{v} -> {mid}"
            );
        }
    }

    #[test]
    fn quantiles_and_json_round_trip() {
        let mut h = Hist::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 - 500_000.0).abs() < 20_000.0, "{p50}");
        assert!((p99 - 990_000.0).abs() < 40_000.0, "{p99}");
        let back = Hist::from_json(&h.to_json()).unwrap();
        assert_eq!(back, h);
        let mut m = Hist::new();
        m.merge(&h);
        m.merge(&back);
        assert_eq!(m.count(), 2000);
    }

    #[test]
    fn summaries() {
        let s = Summary::of(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 10.0));
        assert!(Summary::of(&[]).is_none());
        assert_eq!(median_u64(&mut [5, 1, 3]), 3.0);
    }
}
