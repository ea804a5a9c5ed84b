//! A bounded rolling window of recent values, kept both in arrival order (to know which
//! value leaves) and sorted (so the median is a lookup and the MAD a short merge).

/// The last `cap` values of a series.
#[derive(Debug, Clone)]
pub struct RollingWindow {
    /// Arrival order; once full, `head` is the oldest slot, overwritten next.
    ring: Vec<f64>,
    head: usize,
    /// The same values, ascending.
    sorted: Vec<f64>,
    cap: usize,
}

impl RollingWindow {
    /// An empty window holding at most `cap` (≥ 1) values.
    pub fn new(cap: usize) -> RollingWindow {
        let cap = cap.max(1);
        RollingWindow {
            ring: Vec::with_capacity(cap),
            head: 0,
            sorted: Vec::with_capacity(cap),
            cap,
        }
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Adds a finite value, evicting the oldest when full. O(cap) memmove, no allocation.
    pub fn push(&mut self, x: f64) {
        debug_assert!(x.is_finite(), "the detector only pushes finite values");
        if self.ring.len() < self.cap {
            self.ring.push(x);
        } else {
            let old = std::mem::replace(&mut self.ring[self.head], x);
            self.head = (self.head + 1) % self.cap;
            let at = self.sorted.partition_point(|v| v.total_cmp(&old).is_lt());
            self.sorted.remove(at);
        }
        let at = self.sorted.partition_point(|v| v.total_cmp(&x).is_lt());
        self.sorted.insert(at, x);
    }

    /// Forgets every value (keeps the allocation).
    pub fn clear(&mut self) {
        self.ring.clear();
        self.sorted.clear();
        self.head = 0;
    }

    /// The median (0 when empty).
    pub fn median(&self) -> f64 {
        let s = &self.sorted;
        match s.len() {
            0 => 0.0,
            n if n % 2 == 1 => s[n / 2],
            n => 0.5 * (s[n / 2 - 1] + s[n / 2]),
        }
    }

    /// The median absolute deviation from `center` (normally the median).
    ///
    /// Deviations left of `center` grow leftwards and those right of it grow rightwards,
    /// so the k-th smallest comes from merging two sorted runs from the middle: O(cap).
    pub fn mad(&self, center: f64) -> f64 {
        let n = self.sorted.len();
        if n == 0 {
            return 0.0;
        }
        let mut out = Outward::new(&self.sorted, center);
        let kth = out.nth((n - 1) / 2).unwrap_or(0.0);
        if n % 2 == 1 {
            kth
        } else {
            0.5 * (kth + out.next().unwrap_or(0.0))
        }
    }

    /// Distance from `x` to its `k`-th nearest value in the window (∞ with fewer values).
    pub fn nearest_distance(&self, x: f64, k: usize) -> f64 {
        k.checked_sub(1)
            .and_then(|k| Outward::new(&self.sorted, x).nth(k))
            .unwrap_or(f64::INFINITY)
    }

    /// The smallest positive gap between two values in the window: the series' apparent
    /// resolution (quantisation step). 0 when every value is equal.
    pub fn resolution(&self) -> f64 {
        self.sorted
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|d| *d > 0.0)
            .fold(0.0, |acc: f64, d| if acc == 0.0 { d } else { acc.min(d) })
    }

    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        (self.ring.capacity() + self.sorted.capacity()) * std::mem::size_of::<f64>()
    }
}

/// Distances from a point to the values of a sorted slice, nearest first: a merge of the
/// values left of it (walking left) and right of it (walking right).
struct Outward<'a> {
    sorted: &'a [f64],
    at: f64,
    /// Next candidates: `sorted[left - 1]` and `sorted[right]`.
    left: usize,
    right: usize,
}

impl<'a> Outward<'a> {
    fn new(sorted: &'a [f64], at: f64) -> Self {
        let split = sorted.partition_point(|v| *v < at);
        Outward {
            sorted,
            at,
            left: split,
            right: split,
        }
    }
}

impl Iterator for Outward<'_> {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        let l = (self.left > 0).then(|| self.at - self.sorted[self.left - 1]);
        let r = (self.right < self.sorted.len()).then(|| self.sorted[self.right] - self.at);
        match (l, r) {
            (Some(a), Some(b)) if a <= b => {
                self.left -= 1;
                Some(a)
            }
            (_, Some(b)) => {
                self.right += 1;
                Some(b)
            }
            (Some(a), None) => {
                self.left -= 1;
                Some(a)
            }
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_median(v: &mut [f64]) -> f64 {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        }
    }

    #[test]
    fn median_and_mad_match_a_naive_computation_while_rolling() {
        let mut w = RollingWindow::new(7);
        let mut all = Vec::new();
        let mut x = 0.3_f64;
        for i in 0..200 {
            // A deterministic, unsorted sequence with repeats.
            x = (x * 3.7 + 0.11).fract();
            let v = if i % 5 == 0 { 2.0 } else { (x * 10.0).round() };
            w.push(v);
            all.push(v);
            let tail = &all[all.len().saturating_sub(7)..];
            let med = naive_median(&mut tail.to_vec());
            let mut dev: Vec<f64> = tail.iter().map(|v| (v - med).abs()).collect();
            assert_eq!(w.median(), med, "median at {i}");
            assert_eq!(w.mad(med), naive_median(&mut dev), "mad at {i}");
            assert_eq!(w.len(), tail.len());
        }
    }

    #[test]
    fn nearest_distance_counts_neighbours_on_both_sides() {
        let mut w = RollingWindow::new(8);
        for v in [1.0, 2.0, 10.0, 11.0, 30.0] {
            w.push(v);
        }
        assert_eq!(w.nearest_distance(10.5, 2), 0.5);
        assert_eq!(w.nearest_distance(10.5, 3), 8.5);
        assert_eq!(w.nearest_distance(40.0, 2), 29.0);
        assert_eq!(w.nearest_distance(0.0, 1), 1.0);
        assert_eq!(w.nearest_distance(0.0, 6), f64::INFINITY);
    }

    #[test]
    fn resolution_is_the_smallest_positive_step() {
        let mut w = RollingWindow::new(8);
        assert_eq!(w.resolution(), 0.0);
        for v in [20.0, 20.0, 20.5, 21.5, 20.0] {
            w.push(v);
        }
        assert_eq!(w.resolution(), 0.5);
        let mut c = RollingWindow::new(4);
        for _ in 0..6 {
            c.push(3.0);
        }
        assert_eq!(c.resolution(), 0.0);
        assert_eq!(c.mad(c.median()), 0.0);
    }
}
