//! Byte-range bookkeeping: which parts of a partial file are written.

use std::ops::Range;

/// A set of disjoint, sorted, non-adjacent half-open byte ranges.
///
/// ```
/// use hf_hub::ranges::RangeSet;
/// let mut set = RangeSet::default();
/// set.insert(0..10);
/// set.insert(20..30);
/// set.insert(10..20);
/// assert_eq!(set.ranges().to_vec(), vec![0..30]);
/// assert_eq!(set.missing(40), vec![30..40]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<Range<u64>>,
}

impl RangeSet {
    /// Adds a range, merging it with any it touches.
    pub fn insert(&mut self, range: Range<u64>) {
        if range.start >= range.end {
            return;
        }
        // The ranges are sorted and neither overlap nor touch, so the ones
        // the new range overlaps or touches are one run, found by binary
        // search: a journal of n lines reads in O(n log n), not O(n^2)
        // (the regression gate's resume benchmark showed the quadratic).
        let first = self.ranges.partition_point(|r| r.end < range.start);
        let last = self.ranges.partition_point(|r| r.start <= range.end);
        let last = last.max(first);
        let mut merged = range;
        if let (true, Some(a), Some(b)) = (
            first < last,
            self.ranges.get(first),
            self.ranges.get(last.wrapping_sub(1)),
        ) {
            merged = merged.start.min(a.start)..merged.end.max(b.end);
        }
        self.ranges.splice(first..last, std::iter::once(merged));
    }

    /// The ranges, sorted.
    #[must_use]
    pub fn ranges(&self) -> &[Range<u64>] {
        &self.ranges
    }

    /// Total bytes covered.
    #[must_use]
    pub fn covered(&self) -> u64 {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }

    /// The end of the range starting at 0, or 0.
    #[must_use]
    pub fn prefix_end(&self) -> u64 {
        match self.ranges.first() {
            Some(r) if r.start == 0 => r.end,
            _ => 0,
        }
    }

    /// The parts of `0..size` not covered.
    #[must_use]
    pub fn missing(&self, size: u64) -> Vec<Range<u64>> {
        let mut out = Vec::new();
        let mut pos = 0;
        for r in &self.ranges {
            if r.start >= size {
                break;
            }
            if r.start > pos {
                out.push(pos..r.start);
            }
            pos = pos.max(r.end);
        }
        if pos < size {
            out.push(pos..size);
        }
        out
    }

    /// Removes and returns the ranges that start at or before `pos`
    /// (those that continue a prefix ending at `pos`).
    pub fn take_starting_at_or_before(&mut self, pos: u64) -> Vec<Range<u64>> {
        let split = self.ranges.partition_point(|r| r.start <= pos);
        self.ranges.drain(..split).collect()
    }

    /// Reads a range journal: one `start end` line per written range. Lines
    /// that do not parse (a torn last line) or fall outside `0..size` are
    /// ignored; the content hash catches anything else.
    #[must_use]
    pub fn from_journal(text: &str, size: u64) -> Self {
        let mut set = RangeSet::default();
        for line in text.lines() {
            let mut parts = line.split_ascii_whitespace();
            let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(start), Ok(end)) = (a.parse::<u64>(), b.parse::<u64>()) else {
                continue;
            };
            if start < end && end <= size {
                set.insert(start..end);
            }
        }
        set
    }
}

/// Splits `range` into pieces of at most `chunk` bytes.
#[must_use]
pub fn split(range: Range<u64>, chunk: u64) -> Vec<Range<u64>> {
    let chunk = chunk.max(1);
    let mut out = Vec::new();
    let mut start = range.start;
    while start < range.end {
        let end = range.end.min(start.saturating_add(chunk));
        out.push(start..end);
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_merges_overlapping_and_adjacent() {
        let mut s = RangeSet::default();
        for r in [5..8, 0..2, 7..12, 2..3, 20..25] {
            s.insert(r);
        }
        assert_eq!(s.ranges(), &[0..3, 5..12, 20..25]);
        assert_eq!(s.covered(), 3 + 7 + 5);
        assert_eq!(s.missing(30), vec![3..5, 12..20, 25..30]);
        assert_eq!(s.prefix_end(), 3);
    }

    #[test]
    fn insert_agrees_with_a_bitmap() {
        // Scattered, overlapping, touching and repeated ranges.
        let mut s = RangeSet::default();
        let mut bits = vec![false; 400];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let start = x % 390;
            let end = start + x / 390 % 9;
            s.insert(start..end);
            for b in &mut bits[start as usize..end as usize] {
                *b = true;
            }
            let covered: u64 = bits.iter().map(|&b| u64::from(b)).sum();
            assert_eq!(s.covered(), covered);
            assert!(
                s.ranges().windows(2).all(|w| w[0].end < w[1].start),
                "{:?}",
                s.ranges()
            );
            assert!(
                s.ranges()
                    .iter()
                    .all(|r| bits[r.start as usize..r.end as usize].iter().all(|&b| b))
            );
        }
    }

    #[test]
    fn journal_ignores_torn_and_out_of_range_lines() {
        let s = RangeSet::from_journal("0 10\n10 20\n50 70\n30 2\nabc\n40 4", 60);
        assert_eq!(s.ranges().len(), 1);
        assert_eq!(s.ranges()[0], 0..20);
    }

    #[test]
    fn split_covers_exactly() {
        assert_eq!(split(3..10, 3), vec![3..6, 6..9, 9..10]);
        assert!(split(5..5, 3).is_empty());
    }

    #[test]
    fn take_starting_at_or_before() {
        let mut s = RangeSet::default();
        s.insert(0..4);
        s.insert(6..9);
        s.insert(12..15);
        assert_eq!(s.take_starting_at_or_before(6), vec![0..4, 6..9]);
        assert_eq!(s.ranges().len(), 1);
        assert_eq!(s.ranges()[0], 12..15);
    }
}
