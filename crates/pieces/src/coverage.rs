//! Which bytes of a file have been seen: disjoint, sorted half-open ranges, merged as pieces
//! arrive in any order, overlapping or repeated.

/// The byte ranges of a file held so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    ranges: Vec<(u64, u64)>,
}

impl Coverage {
    /// Nothing held.
    pub fn new() -> Coverage {
        Coverage::default()
    }

    /// Adds `start..end`.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // The first range that ends at or after `start` (touching ranges merge).
        let i = self.ranges.partition_point(|&(_, e)| e < start);
        let mut j = i;
        let (mut s, mut e) = (start, end);
        while j < self.ranges.len() && self.ranges[j].0 <= end {
            s = s.min(self.ranges[j].0);
            e = e.max(self.ranges[j].1);
            j += 1;
        }
        self.ranges.splice(i..j, [(s, e)]);
    }

    /// The parts of `start..end` already held.
    pub fn overlaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let i = self.ranges.partition_point(|&(_, e)| e <= start);
        self.ranges[i..].iter().take_while(|&&(s, _)| s < end).map(|&(s, e)| (s.max(start), e.min(end))).filter(|(s, e)| s < e).collect()
    }

    /// Whether every byte of `0..total` is held.
    pub fn is_complete(&self, total: u64) -> bool {
        total == 0 || self.ranges.first().is_some_and(|&(s, e)| s == 0 && e >= total)
    }

    /// Bytes held.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// One past the last byte held.
    pub fn end(&self) -> u64 {
        self.ranges.last().map_or(0, |r| r.1)
    }

    /// The held ranges, in order.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }
}
