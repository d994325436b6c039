//! [`QuantileSketch`]: a mergeable quantile sketch with a relative-error guarantee (DDSketch).
//!
//! Values are counted in logarithmic buckets `(γ^(k-1), γ^k]` with `γ = (1+α)/(1-α)`. Any
//! quantile answered from the bucket that holds the rank is within `α` relative error of the true
//! value at that rank, and two sketches merge by adding bucket counts, exactly. With
//! [`RELATIVE_ACCURACY`] = 0.5 % the store keeps one sketch per time bucket and group, and the
//! query layer merges them into percentiles within 1 % of the exact ones.
//!
//! Rank convention: `quantile(q)` estimates `sorted[floor(q * (n - 1))]` (the lower value at the
//! rank, no interpolation), so tests compare against that element.

use crate::error::SketchDecodeError;

/// Relative accuracy α of every sketch: 0.5 %.
pub const RELATIVE_ACCURACY: f64 = 0.005;

/// Values below this are counted as zero (1 ns when the unit is seconds).
const MIN_INDEXABLE: f64 = 1e-9;
/// Bucket keys are clamped to this range, which covers 1e-9 ..= 1e12 with α = 0.5 %.
const MIN_KEY: i32 = -2100;
const MAX_KEY: i32 = 2800;
const ENCODING_VERSION: u8 = 1;

/// A DDSketch over non-negative values.
///
/// Values are counted in logarithmic buckets `(γ^(k-1), γ^k]` with `γ = (1+α)/(1-α)`. Any
/// quantile answered from the bucket that holds the rank is within `α` relative error of the true
/// value at that rank, and two sketches merge by adding bucket counts, exactly. With
/// [`RELATIVE_ACCURACY`] = 0.5 % the store keeps one sketch per time bucket and group, and the
/// query layer merges them into percentiles within 1 % of the exact ones.
///
/// Rank convention: `quantile(q)` estimates `sorted[floor(q * (n - 1))]` (the lower value at the
/// rank, no interpolation), so tests compare against that element.
///
/// ```
/// use telemetry_core::QuantileSketch;
///
/// let mut a = QuantileSketch::new();
/// let mut b = QuantileSketch::new();
/// for i in 1..=500 { a.add(i as f64); }
/// for i in 501..=1000 { b.add(i as f64); }
/// a.merge(&b);
/// let p50 = a.quantile(0.5).unwrap();
/// assert!((p50 - 500.0).abs() / 500.0 <= 0.01);
/// let bytes = a.to_bytes();
/// assert_eq!(QuantileSketch::from_bytes(&bytes).unwrap(), a);
/// ```
#[derive(Debug, Clone, Default)]
pub struct QuantileSketch {
    /// Counts of values below [`MIN_INDEXABLE`].
    zero_count: u64,
    /// Key of `bins[0]`.
    offset: i32,
    /// Dense counts for keys `offset..offset + bins.len()`. May hold empty bins at either end
    /// (room to grow without moving the counts), which neither the encoding nor equality sees.
    bins: Vec<u64>,
    count: u64,
    min: f64,
    max: f64,
}

/// Empty bins a sketch keeps beyond the keys it counts, on each side, when it allocates or
/// grows: the values of a time bucket tend to fall near each other, so most adds after the
/// first find their bin already there (a rollup of a few records would otherwise reallocate
/// its bins on nearly every add, and every add below the lowest key would move them all).
const SLACK: i32 = 8;

/// Two sketches are equal when they hold the same counts and bounds, wherever their empty
/// bins end.
impl PartialEq for QuantileSketch {
    fn eq(&self, other: &Self) -> bool {
        self.zero_count == other.zero_count
            && self.count == other.count
            && self.min == other.min
            && self.max == other.max
            && self.counted() == other.counted()
    }
}

fn gamma_ln() -> f64 {
    ((1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)).ln()
}

fn key_of(value: f64) -> i32 {
    let k = (value.ln() / gamma_ln()).ceil();
    // Clamped, so the cast cannot overflow.
    k.clamp(f64::from(MIN_KEY), f64::from(MAX_KEY)) as i32
}

fn value_of(key: i32) -> f64 {
    // The midpoint (in relative terms) of (γ^(k-1), γ^k].
    let g = gamma_ln().exp();
    2.0 * (f64::from(key) * gamma_ln()).exp() / (1.0 + g)
}

impl QuantileSketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of values added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Smallest value added (`None` when empty).
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// Largest value added (`None` when empty).
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// Adds one value. Negative, NaN and infinite values are ignored (validated records never
    /// carry them); returns whether the value was counted.
    pub fn add(&mut self, value: f64) -> bool {
        if !value.is_finite() || value < 0.0 {
            return false;
        }
        if self.count == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.count += 1;
        if value < MIN_INDEXABLE {
            self.zero_count += 1;
        } else {
            let key = key_of(value);
            self.grow_to(key, key);
            let idx = (key - self.offset) as usize;
            self.bins[idx] += 1;
        }
        true
    }

    /// Adds every count of `other` to this sketch.
    pub fn merge(&mut self, other: &QuantileSketch) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.zero_count += other.zero_count;
        let (lo, counts) = other.counted();
        if !counts.is_empty() {
            self.grow_to(lo, lo + counts.len() as i32 - 1);
            let shift = (lo - self.offset) as usize;
            for (bin, c) in self.bins[shift..].iter_mut().zip(counts) {
                *bin += c;
            }
        }
    }

    /// The first counted key and the counts from it to the last counted bin (empty bins at
    /// the ends left out); `(0, [])` when no value is in a bin.
    fn counted(&self) -> (i32, &[u64]) {
        match (
            self.bins.iter().position(|&c| c > 0),
            self.bins.iter().rposition(|&c| c > 0),
        ) {
            (Some(first), Some(last)) => (self.offset + first as i32, &self.bins[first..=last]),
            _ => (0, &[]),
        }
    }

    /// Makes `bins` cover keys `lo..=hi` (within `MIN_KEY..=MAX_KEY`, where keys are clamped),
    /// with [`SLACK`] empty bins or half the current length beyond, so that growing one key at
    /// a time costs amortized constant time.
    fn grow_to(&mut self, lo: i32, hi: i32) {
        if self.bins.is_empty() {
            let lo = (lo - SLACK).max(MIN_KEY);
            let hi = (hi + SLACK).min(MAX_KEY);
            self.offset = lo;
            self.bins = vec![0; (hi - lo + 1) as usize];
            return;
        }
        let more = SLACK.max(self.bins.len() as i32 / 2);
        let cur_hi = self.offset + self.bins.len() as i32 - 1;
        if lo < self.offset {
            let lo = (lo - more).max(MIN_KEY);
            let extra = (self.offset - lo) as usize;
            let mut bins = Vec::with_capacity(extra + self.bins.len() + more as usize);
            bins.resize(extra, 0);
            bins.extend_from_slice(&self.bins);
            self.bins = bins;
            self.offset = lo;
        }
        if hi > cur_hi {
            let hi = (hi + more).min(MAX_KEY);
            self.bins
                .resize(self.bins.len() + (hi - cur_hi) as usize, 0);
        }
    }

    /// Estimate of the `q`-quantile (`0 <= q <= 1`) within [`RELATIVE_ACCURACY`] of
    /// `sorted[floor(q * (n - 1))]`; `None` when empty or `q` is outside `0..=1`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        if rank == 0 {
            return Some(self.min);
        }
        if rank == self.count - 1 {
            return Some(self.max);
        }
        let mut seen = self.zero_count;
        if seen > rank {
            return Some(0.0_f64.max(self.min));
        }
        for (i, c) in self.bins.iter().enumerate() {
            seen += c;
            if seen > rank {
                let v = value_of(self.offset + i as i32);
                return Some(v.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// The counted buckets, smallest values first, as `(lower, upper, count)`: each of the `count`
    /// values lies in `(lower, upper]` (the first bucket is `[0, 1e-9]` for values counted as
    /// zero). Empty buckets are skipped. This is what a histogram of a merged sketch is drawn
    /// from; counts sum to [`count`](Self::count).
    ///
    /// ```
    /// use telemetry_core::QuantileSketch;
    ///
    /// let mut s = QuantileSketch::new();
    /// for v in [0.1, 0.1, 2.0] { s.add(v); }
    /// let buckets: Vec<_> = s.buckets().collect();
    /// assert_eq!(buckets.len(), 2);
    /// assert_eq!(buckets.iter().map(|b| b.2).sum::<u64>(), 3);
    /// assert!(buckets[1].0 < 2.0 && 2.0 <= buckets[1].1);
    /// ```
    pub fn buckets(&self) -> impl Iterator<Item = (f64, f64, u64)> + '_ {
        let zero = (self.zero_count > 0).then_some((0.0, MIN_INDEXABLE, self.zero_count));
        let ln = gamma_ln();
        let bins = self.bins.iter().enumerate().filter_map(move |(i, &c)| {
            let key = f64::from(self.offset + i as i32);
            (c > 0).then(|| (((key - 1.0) * ln).exp(), (key * ln).exp(), c))
        });
        zero.into_iter().chain(bins)
    }

    /// Counts of the values per histogram bucket: element `i` counts the values `v` with
    /// `upper_bounds[i-1] < v <= upper_bounds[i]`, and one last element counts those above the
    /// last bound (`upper_bounds` must be ascending). Each sketch bucket is placed by its
    /// representative value, so a value within [`RELATIVE_ACCURACY`] of a bound may be counted
    /// on either side of it; zeros go to the first bucket.
    ///
    /// ```
    /// use telemetry_core::QuantileSketch;
    ///
    /// let mut s = QuantileSketch::new();
    /// for v in [0.05, 0.2, 0.3, 4.0] { s.add(v); }
    /// assert_eq!(s.bucket_counts(&[0.1, 1.0]), vec![1, 2, 1]);
    /// ```
    pub fn bucket_counts(&self, upper_bounds: &[f64]) -> Vec<u64> {
        let mut out = vec![0; upper_bounds.len() + 1];
        let slot = |v: f64| upper_bounds.partition_point(|&b| b < v);
        if self.zero_count > 0 {
            out[slot(0.0)] += self.zero_count;
        }
        for (i, &c) in self.bins.iter().enumerate() {
            if c > 0 {
                let v = value_of(self.offset + i as i32).clamp(self.min, self.max);
                out[slot(v)] += c;
            }
        }
        out
    }

    /// Estimated sum of the values (each counted at its bucket's representative value), within
    /// [`RELATIVE_ACCURACY`] of the true sum; for sketches whose exact sum is not kept elsewhere.
    pub fn estimated_sum(&self) -> f64 {
        self.bins
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, &c)| c as f64 * value_of(self.offset + i as i32).clamp(self.min, self.max))
            .sum()
    }

    /// Compact binary encoding (for the store's summary tables). Stable across versions of this
    /// crate that keep `ENCODING_VERSION`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.bins.len() * 2);
        out.push(ENCODING_VERSION);
        put_varint(&mut out, self.count);
        put_varint(&mut out, self.zero_count);
        out.extend_from_slice(&self.min.to_le_bytes());
        out.extend_from_slice(&self.max.to_le_bytes());
        // Empty bins at both ends are left out.
        let (first, counts) = self.counted();
        put_varint(&mut out, zigzag(first));
        put_varint(&mut out, counts.len() as u64);
        for &c in counts {
            put_varint(&mut out, c);
        }
        out
    }

    /// Decodes [`to_bytes`](Self::to_bytes) output; a typed error for anything malformed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SketchDecodeError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.byte()?;
        if version != ENCODING_VERSION {
            return Err(SketchDecodeError::UnknownVersion(version));
        }
        let count = r.varint()?;
        let zero_count = r.varint()?;
        let min = f64::from_le_bytes(r.array()?);
        let max = f64::from_le_bytes(r.array()?);
        let offset = unzigzag(r.varint()?)?;
        let len = r.varint()?;
        if len > 0 && (offset < MIN_KEY || i64::from(offset) + len as i64 - 1 > i64::from(MAX_KEY))
        {
            return Err(SketchDecodeError::Malformed("bucket range out of bounds"));
        }
        let mut bins = Vec::with_capacity(len as usize);
        let mut total = zero_count;
        for _ in 0..len {
            let c = r.varint()?;
            total = total
                .checked_add(c)
                .ok_or(SketchDecodeError::Malformed("count overflow"))?;
            bins.push(c);
        }
        if r.pos != bytes.len() {
            return Err(SketchDecodeError::Malformed("trailing bytes"));
        }
        if total != count || (count > 0 && !(min.is_finite() && max.is_finite() && min <= max)) {
            return Err(SketchDecodeError::Malformed(
                "inconsistent counts or bounds",
            ));
        }
        Ok(QuantileSketch {
            zero_count,
            offset: if bins.is_empty() { 0 } else { offset },
            bins,
            count,
            min: if count == 0 { 0.0 } else { min },
            max: if count == 0 { 0.0 } else { max },
        })
    }
}

fn zigzag(v: i32) -> u64 {
    ((v << 1) ^ (v >> 31)) as u32 as u64
}

fn unzigzag(v: u64) -> Result<i32, SketchDecodeError> {
    let v = u32::try_from(v).map_err(|_| SketchDecodeError::Malformed("offset out of range"))?;
    Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, SketchDecodeError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or(SketchDecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn array(&mut self) -> Result<[u8; 8], SketchDecodeError> {
        let end = self.pos + 8;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(SketchDecodeError::Truncated)?;
        self.pos = end;
        let mut a = [0u8; 8];
        a.copy_from_slice(slice);
        Ok(a)
    }

    fn varint(&mut self) -> Result<u64, SketchDecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(SketchDecodeError::Malformed("varint too long"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn empty_sketch_has_no_quantiles() {
        let s = QuantileSketch::new();
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(s.min(), None);
        assert_eq!(QuantileSketch::from_bytes(&s.to_bytes()).unwrap(), s);
    }

    #[test]
    fn buckets_hold_every_value_once_in_order() {
        let mut s = QuantileSketch::new();
        let values = [0.0, 0.003, 0.05, 0.05, 1.0, 7.5, 120.0];
        for v in values {
            s.add(v);
        }
        let buckets: Vec<_> = s.buckets().collect();
        assert_eq!(
            buckets.iter().map(|b| b.2).sum::<u64>(),
            values.len() as u64
        );
        assert_eq!(buckets[0], (0.0, MIN_INDEXABLE, 1));
        for w in buckets.windows(2) {
            assert!(w[0].1 <= w[1].0, "{w:?}");
        }
        for v in &values[1..] {
            let n = buckets.iter().filter(|b| b.0 < *v && *v <= b.1).count();
            assert_eq!(n, 1, "{v} in {buckets:?}");
        }
        let twice = buckets.iter().find(|b| b.0 < 0.05 && 0.05 <= b.1).unwrap();
        assert_eq!(twice.2, 2);
        assert_eq!(QuantileSketch::new().buckets().count(), 0);
    }

    #[test]
    fn rejects_bad_values_and_quantiles() {
        let mut s = QuantileSketch::new();
        assert!(!s.add(f64::NAN));
        assert!(!s.add(-1.0));
        assert!(s.add(0.0));
        assert_eq!(s.quantile(1.5), None);
        assert_eq!(s.quantile(0.5), Some(0.0));
    }

    #[test]
    fn decoding_garbage_is_an_error_not_a_panic() {
        assert!(QuantileSketch::from_bytes(&[]).is_err());
        assert!(QuantileSketch::from_bytes(&[9, 1, 2]).is_err());
        let mut good = QuantileSketch::new();
        good.add(1.0);
        let mut bytes = good.to_bytes();
        bytes.push(0);
        assert!(QuantileSketch::from_bytes(&bytes).is_err());
        bytes.truncate(5);
        assert!(QuantileSketch::from_bytes(&bytes).is_err());
    }

    #[test]
    fn bucket_counts_and_sum_follow_the_values() {
        let mut s = QuantileSketch::new();
        for v in [0.0, 0.05, 0.2, 0.3, 4.0, 100.0] {
            s.add(v);
        }
        let counts = s.bucket_counts(&[0.1, 1.0, 10.0]);
        assert_eq!(counts, vec![2, 2, 1, 1]);
        assert_eq!(counts.iter().sum::<u64>(), s.count());
        let sum = s.estimated_sum();
        assert!((sum - 104.55).abs() <= 104.55 * RELATIVE_ACCURACY, "{sum}");
        assert_eq!(QuantileSketch::new().bucket_counts(&[1.0]), vec![0, 0]);
    }

    /// A value whose key is `k`: inside its bucket, away from the edges.
    fn value_with_key(k: i32) -> f64 {
        ((f64::from(k) - 0.5) * gamma_ln()).exp()
    }

    #[test]
    fn growing_by_a_few_keys_keeps_the_counts_in_place() {
        let mut s = QuantileSketch::new();
        s.add(value_with_key(0));
        let bins = s.bins.as_ptr();
        // Before the slack, every add below the lowest key moved all the counts to a new buffer.
        for k in 1..SLACK {
            assert_eq!(key_of(value_with_key(-k)), -k);
            s.add(value_with_key(-k));
            assert_eq!(s.bins.as_ptr(), bins, "bins reallocated for key {}", -k);
            s.add(value_with_key(k));
            assert_eq!(s.bins.as_ptr(), bins, "bins reallocated for key {k}");
        }
        assert_eq!(s.count(), 1 + 2 * (SLACK as u64 - 1));
    }

    #[test]
    fn empty_bins_are_neither_encoded_nor_compared() {
        let mut one = QuantileSketch::new();
        one.add(1.0);
        assert!(one.bins.len() > 1, "room to grow is kept");
        // version, count, zero count, min, max, first key (zigzag 0), one bin holding 1.
        let mut want = vec![1, 1, 0];
        want.extend_from_slice(&1.0f64.to_le_bytes());
        want.extend_from_slice(&1.0f64.to_le_bytes());
        want.extend_from_slice(&[0, 1, 1]);
        assert_eq!(one.to_bytes(), want);
        let decoded = QuantileSketch::from_bytes(&want).unwrap();
        assert_eq!(decoded.bins.len(), 1);
        assert_eq!(decoded, one);

        // The same counts reached by adds and by merges (different empty bins) are equal.
        let values: Vec<f64> = (0..40).map(|i| value_with_key(i * 3 - 50)).collect();
        let mut added = QuantileSketch::new();
        values.iter().for_each(|&v| {
            added.add(v);
        });
        let mut merged = QuantileSketch::new();
        for &v in values.iter().rev() {
            let mut single = QuantileSketch::new();
            single.add(v);
            merged.merge(&single);
        }
        assert_eq!(added, merged);
        assert_eq!(added.to_bytes(), merged.to_bytes());
        merged.add(2.0);
        assert_ne!(added, merged);
    }

    proptest! {
        #[test]
        fn quantiles_within_one_percent(
            values in prop::collection::vec(prop_oneof![Just(0.0), 1e-6f64..1e5], 1..400),
            split in 0usize..400,
            q in 0.0f64..=1.0,
        ) {
            let split = split.min(values.len());
            let mut a = QuantileSketch::new();
            let mut b = QuantileSketch::new();
            for v in &values[..split] { a.add(*v); }
            for v in &values[split..] { b.add(*v); }
            a.merge(&b);
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let want = exact(&sorted, q);
            let got = a.quantile(q).unwrap();
            prop_assert!((got - want).abs() <= 0.01 * want.abs() + 1e-9, "q={q} got={got} want={want}");
            let decoded = QuantileSketch::from_bytes(&a.to_bytes()).unwrap();
            prop_assert_eq!(decoded.quantile(q), a.quantile(q));
            prop_assert_eq!(decoded.count(), values.len() as u64);
        }

        #[test]
        fn from_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = QuantileSketch::from_bytes(&bytes);
        }
    }
}
