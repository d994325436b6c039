//! Covering a time range with whole summary buckets, and what is left for raw rows.
//!
//! A bucket `[b, b + w)` is wholly inside the inclusive range `[lo, hi]` iff `lo <= b` and
//! `b + w <= hi`. Bucket starts are whole seconds, so both tests are done exactly on integers:
//! `b >= ceil(lo)` and `b + w <= floor(hi)`. The coarsest level takes the longest run of whole
//! buckets; each finer level extends that run at both ends. The run stays one contiguous interval
//! `[covered.0, covered.1)`: a record is answered by the summaries iff the minute bucket the store
//! filed it under lies in that interval, and by its raw row otherwise.

/// Rollup rows to merge: `level = level AND from <= bucket_start < to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    /// Bucket width, seconds.
    pub level: i64,
    /// First bucket start.
    pub from: i64,
    /// End (exclusive) of the last bucket.
    pub to: i64,
}

/// How a range is answered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// Summary rows to merge.
    pub pieces: Vec<Piece>,
    /// Seconds `[start, end)` answered by `pieces`; `None` when no whole bucket fits.
    pub covered: Option<(i64, i64)>,
}

impl Plan {
    /// Whether a record filed under minute bucket `minute` is answered by the summaries.
    pub(crate) fn covers_minute(&self, minute: i64) -> bool {
        self.covered.is_some_and(|(a, b)| a <= minute && minute < b)
    }
}

/// Plans `[lo, hi]` (inclusive, finite, `lo <= hi`) over `levels`, coarsest first, each a multiple
/// of the next.
pub(crate) fn plan(lo: f64, hi: f64, levels: &[i64]) -> Plan {
    // Whole seconds that bound the buckets: b >= first and b + w <= last.
    let first = lo.ceil() as i64;
    let last = hi.floor() as i64;
    let mut pieces = Vec::new();
    let mut covered: Option<(i64, i64)> = None;
    for &w in levels {
        let start = first.div_euclid(w) * w + if first.rem_euclid(w) == 0 { 0 } else { w };
        let end = last.div_euclid(w) * w;
        match covered {
            None => {
                if start < end {
                    pieces.push(Piece {
                        level: w,
                        from: start,
                        to: end,
                    });
                    covered = Some((start, end));
                }
            }
            Some((a, b)) => {
                let (mut a2, mut b2) = (a, b);
                if start < a {
                    pieces.push(Piece {
                        level: w,
                        from: start,
                        to: a,
                    });
                    a2 = start;
                }
                if end > b {
                    pieces.push(Piece {
                        level: w,
                        from: b,
                        to: end,
                    });
                    b2 = end;
                }
                covered = Some((a2, b2));
            }
        }
    }
    Plan { pieces, covered }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEVELS: [i64; 3] = [86_400, 3_600, 60];

    #[test]
    fn aligned_days_use_day_buckets_only() {
        let p = plan(86_400.0, 3.0 * 86_400.0, &LEVELS);
        assert_eq!(
            p.pieces,
            vec![Piece {
                level: 86_400,
                from: 86_400,
                to: 3 * 86_400
            }]
        );
        assert_eq!(p.covered, Some((86_400, 3 * 86_400)));
    }

    #[test]
    fn unaligned_edges_step_down_levels() {
        // 00:30:30 on day 1 .. 02:10:45 on day 3.
        let lo = 86_400.0 + 1_830.0;
        let hi = 3.0 * 86_400.0 + 7_845.0;
        let p = plan(lo, hi, &LEVELS);
        assert_eq!(p.covered, Some((86_400 + 1_860, 3 * 86_400 + 7_800)));
        assert!(p.pieces.contains(&Piece {
            level: 86_400,
            from: 2 * 86_400,
            to: 3 * 86_400
        }));
        assert!(p.pieces.contains(&Piece {
            level: 3_600,
            from: 86_400 + 3_600,
            to: 2 * 86_400
        }));
        assert!(p.pieces.contains(&Piece {
            level: 60,
            from: 86_400 + 1_860,
            to: 86_400 + 3_600
        }));
        let secs: i64 = p.pieces.iter().map(|x| x.to - x.from).sum();
        assert_eq!(secs, p.covered.map(|(a, b)| b - a).unwrap_or(0));
        assert!(!p.covers_minute(86_400 + 1_800));
        assert!(p.covers_minute(86_400 + 1_860));
        assert!(!p.covers_minute(3 * 86_400 + 7_800));
    }

    #[test]
    fn short_ranges_have_no_buckets() {
        let p = plan(100.5, 150.0, &LEVELS);
        assert!(p.pieces.is_empty());
        assert_eq!(p.covered, None);
        assert!(!p.covers_minute(120));
    }

    #[test]
    fn a_bucket_ending_exactly_at_until_is_whole() {
        let p = plan(0.0, 60.0, &LEVELS);
        assert_eq!(p.covered, Some((0, 60)));
        let p = plan(0.0, 59.9, &LEVELS);
        assert_eq!(p.covered, None);
    }
}
