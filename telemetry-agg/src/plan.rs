//! Covering a time range with whole summary buckets, and what is left for raw rows.
//!
//! A bucket `[b, b + w)` is wholly inside the inclusive range `[lo, hi]` iff `lo <= b` and
//! `b + w <= hi`. Bucket starts are whole seconds, so both tests are done exactly on integers:
//! `b >= ceil(lo)` and `b + w <= floor(hi)`. The coarsest level takes the longest run of whole
//! buckets; each finer level extends that run at both ends. A record is answered by the
//! summaries iff the minute bucket the store filed it under lies in [`Plan::covered`], and by its
//! raw row otherwise.
//!
//! ## Sparse hours
//!
//! The store keeps minute summaries only for *detailed* hours (those that reached its
//! threshold of calls; see `telemetry-store`'s `minute_rollup_threshold`): an hour has either
//! minute rows for all of its records or none. [`Plan::without_hours`] takes the minute pieces
//! out of the hours that have none, so those records are read from their raw rows (a sparse
//! hour holds few).
//!
//! When a coarser level than the minute takes part (every query but a series by minute), the
//! covered set stays one interval. Proof: let `[A, B)` be what the hour and day levels cover.
//! `A` is the first hour start `>= ceil(lo)`, so `A - 3600 < ceil(lo) <= s`, where `s` is the
//! first minute piece's start: the left minute piece `[s, A)` lies inside the one hour
//! `[A - 3600, A)`, and likewise the right one `[B, e)` inside `[B, B + 3600)`. Dropping a sparse
//! hour drops such a piece whole, and what is left, `[s or A, B or e)`, is an interval. When
//! no whole hour fits, the minute piece `[s, e)` holds at most one hour boundary `h` (two would
//! frame a whole hour), so it splits into `[s, h)` and `[h, e)`, and dropping either or both
//! leaves an interval or nothing. A series by minute (minute level only) may span many hours,
//! so there the covered set can have holes, and [`Plan::covered`] is a list of intervals.

/// Seconds in an hour bucket: the unit in which the store keeps or omits minute summaries.
pub(crate) const HOUR: i64 = 3_600;

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
    /// Seconds `[start, end)` answered by `pieces`: sorted, disjoint and not touching (one
    /// interval unless a minute-only plan lost sparse hours in its middle); empty when no whole
    /// bucket fits.
    pub covered: Vec<(i64, i64)>,
}

impl Plan {
    /// Whether a record filed under minute bucket `minute` is answered by the summaries.
    pub(crate) fn covers_minute(&self, minute: i64) -> bool {
        // The last interval starting at or before `minute`.
        let i = self.covered.partition_point(|&(a, _)| a <= minute);
        i > 0 && minute < self.covered[i - 1].1
    }

    /// The pieces finer than an hour (the minute level), whose hours may be sparse.
    pub(crate) fn minute_pieces(&self) -> impl Iterator<Item = &Piece> {
        self.pieces.iter().filter(|p| p.level < HOUR)
    }

    /// The plan with the minute pieces cut out of `sparse` (hour starts): the records there are
    /// left to the raw rows.
    pub(crate) fn without_hours(self, sparse: &[i64]) -> Plan {
        if sparse.is_empty() {
            return self;
        }
        let mut sparse = sparse.to_vec();
        sparse.sort_unstable();
        let mut pieces = Vec::with_capacity(self.pieces.len() + sparse.len());
        for p in self.pieces {
            if p.level >= HOUR {
                pieces.push(p);
                continue;
            }
            // Walk the piece hour by hour, keeping maximal runs outside sparse hours.
            let mut from = p.from;
            while from < p.to {
                let hour = from.div_euclid(HOUR) * HOUR;
                let to = (hour + HOUR).min(p.to);
                if sparse.binary_search(&hour).is_err() {
                    match pieces.last_mut() {
                        Some(last) if last.level == p.level && last.to == from => last.to = to,
                        _ => pieces.push(Piece {
                            level: p.level,
                            from,
                            to,
                        }),
                    }
                }
                from = to;
            }
        }
        let covered = union(&pieces);
        Plan { pieces, covered }
    }
}

/// The union of the pieces' spans, as sorted, disjoint, non-touching intervals.
fn union(pieces: &[Piece]) -> Vec<(i64, i64)> {
    let mut spans: Vec<(i64, i64)> = pieces.iter().map(|p| (p.from, p.to)).collect();
    spans.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(spans.len());
    for (a, b) in spans {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Plans `[lo, hi]` (inclusive, finite, `lo <= hi`) over `levels`, coarsest first, each a multiple
/// of the next, as if every hour had its minute summaries.
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
    Plan {
        pieces,
        covered: covered.into_iter().collect(),
    }
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
        assert_eq!(p.covered, vec![(86_400, 3 * 86_400)]);
    }

    #[test]
    fn unaligned_edges_step_down_levels() {
        // 00:30:30 on day 1 .. 02:10:45 on day 3.
        let lo = 86_400.0 + 1_830.0;
        let hi = 3.0 * 86_400.0 + 7_845.0;
        let p = plan(lo, hi, &LEVELS);
        assert_eq!(p.covered, vec![(86_400 + 1_860, 3 * 86_400 + 7_800)]);
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
        assert_eq!(secs, p.covered.iter().map(|(a, b)| b - a).sum::<i64>());
        assert!(!p.covers_minute(86_400 + 1_800));
        assert!(p.covers_minute(86_400 + 1_860));
        assert!(!p.covers_minute(3 * 86_400 + 7_800));
    }

    #[test]
    fn short_ranges_have_no_buckets() {
        let p = plan(100.5, 150.0, &LEVELS);
        assert!(p.pieces.is_empty());
        assert!(p.covered.is_empty());
        assert!(!p.covers_minute(120));
    }

    #[test]
    fn a_bucket_ending_exactly_at_until_is_whole() {
        let p = plan(0.0, 60.0, &LEVELS);
        assert_eq!(p.covered, vec![(0, 60)]);
        let p = plan(0.0, 59.9, &LEVELS);
        assert!(p.covered.is_empty());
    }

    #[test]
    fn sparse_edge_hours_are_left_to_raw_rows() {
        // 00:30:30 on day 1 .. 02:10:45 on day 3: minute pieces in hours 00:00 of day 1 and
        // 02:00 of day 3.
        let lo = 86_400.0 + 1_830.0;
        let hi = 3.0 * 86_400.0 + 7_845.0;
        let p = plan(lo, hi, &LEVELS).without_hours(&[86_400]);
        assert_eq!(p.covered, vec![(86_400 + 3_600, 3 * 86_400 + 7_800)]);
        assert!(!p.covers_minute(86_400 + 1_860));
        assert!(p.covers_minute(86_400 + 3_600));
        assert!(
            p.pieces
                .iter()
                .all(|x| x.level != 60 || x.from >= 2 * 86_400)
        );
        let p = plan(lo, hi, &LEVELS).without_hours(&[86_400, 3 * 86_400 + 7_200]);
        assert_eq!(p.covered, vec![(86_400 + 3_600, 3 * 86_400 + 7_200)]);
        assert!(p.pieces.iter().all(|x| x.level != 60));
    }

    #[test]
    fn a_minute_series_loses_sparse_hours_in_its_middle() {
        let p = plan(0.0, 4.0 * 3_600.0, &[60]).without_hours(&[3_600, 7_200]);
        assert_eq!(p.covered, vec![(0, 3_600), (10_800, 14_400)]);
        assert_eq!(
            p.pieces,
            vec![
                Piece {
                    level: 60,
                    from: 0,
                    to: 3_600
                },
                Piece {
                    level: 60,
                    from: 10_800,
                    to: 14_400
                }
            ]
        );
        assert!(p.covers_minute(3_540));
        assert!(!p.covers_minute(3_600));
        assert!(!p.covers_minute(10_740));
        assert!(p.covers_minute(10_800));
        assert!(!p.covers_minute(14_400));
    }

    /// The proof in the module docs, checked: with an hour level in the plan, taking the minute
    /// pieces out of any set of sparse hours leaves one interval (or none), and the pieces
    /// still tile it exactly.
    #[test]
    fn covered_stays_one_interval_when_hours_take_part() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |m: i64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % m as u64) as i64
        };
        for levels in [&LEVELS[..], &LEVELS[1..]] {
            for _ in 0..2_000 {
                let lo = (next(3 * 86_400) * 4 + next(4)) as f64 / 4.0;
                let hi = lo + (next(2 * 86_400) * 4 + next(4)) as f64 / 4.0;
                let full = plan(lo, hi, levels);
                let hours: Vec<i64> = full
                    .minute_pieces()
                    .flat_map(|p| {
                        (p.from.div_euclid(HOUR)..=(p.to - 1).div_euclid(HOUR)).map(|h| h * HOUR)
                    })
                    .collect();
                assert!(hours.len() <= 2, "{lo} {hi} {hours:?}");
                for mask in 0..(1u32 << hours.len()) {
                    let sparse: Vec<i64> = (0..hours.len())
                        .filter(|i| mask & (1 << i) != 0)
                        .map(|i| hours[i])
                        .collect();
                    let p = full.clone().without_hours(&sparse);
                    assert!(p.covered.len() <= 1, "{lo} {hi} {sparse:?} {p:?}");
                    let secs: i64 = p.pieces.iter().map(|x| x.to - x.from).sum();
                    assert_eq!(secs, p.covered.iter().map(|(a, b)| b - a).sum::<i64>());
                    for x in p.minute_pieces() {
                        for h in x.from.div_euclid(HOUR)..=(x.to - 1).div_euclid(HOUR) {
                            assert!(!sparse.contains(&(h * HOUR)), "{x:?} {sparse:?}");
                        }
                    }
                }
            }
        }
    }
}
