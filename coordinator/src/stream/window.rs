//! Windows built from panes, the watermark, and late records.
//!
//! Time is cut into panes of `slide` milliseconds; a window of `size` is
//! `size / slide` consecutive panes, and a new window starts at every pane
//! boundary (tumbling windows: one pane each). Partials are merged into
//! their pane once; a window is the merge of its panes at the moment it is
//! emitted. A record is never copied into each window it belongs to.
//!
//! Window `q` covers panes `q .. q + n` (`n` panes per window), i.e. the
//! times `[q * slide, q * slide + size)`. Pane `p` belongs to windows
//! `p - n + 1 ..= p`; the `j`-th of them ends at `(p + 1 + j) * slide`.
//!
//! **Invariant:** a window is emitted once, when the watermark reaches its
//! end; afterwards a record of it counts as late and is never merged. A
//! pane keeps a table per *closure class* `k` (records for which the first
//! `k` windows of the pane were already closed when they arrived), so a
//! record that is late for some of its sliding windows still counts in the
//! others.

use std::collections::BTreeMap;

use tally_protocol::{GroupState, GroupTable};

/// Window length and slide, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// Window length.
    pub size_ms: u64,
    /// Distance between window starts (`size_ms` for tumbling windows);
    /// divides `size_ms`.
    pub slide_ms: u64,
}

impl WindowSpec {
    /// A tumbling window.
    pub fn tumbling(size_ms: u64) -> Self {
        WindowSpec {
            size_ms,
            slide_ms: size_ms,
        }
    }

    /// Panes per window.
    pub fn panes_per_window(&self) -> u64 {
        self.size_ms / self.slide_ms.max(1)
    }
}

/// A closed window's groups, sorted by key.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowResult {
    /// First millisecond of the window (since the epoch).
    pub start_ms: i64,
    /// One past its last millisecond.
    pub end_ms: i64,
    /// The groups, sorted by key; key and value layout as the query's.
    pub groups: Vec<GroupState>,
    /// Records in the window.
    pub records: u64,
}

#[derive(Default)]
struct Pane {
    /// Table per closure class `k` (index), `0..n`.
    classes: Vec<GroupTable>,
}

/// Late records counted, in total and per window (bounded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LateCounts {
    /// Records that arrived after every window they belong to was emitted.
    pub total: u64,
    /// By the start (ms) of the last window each belonged to; at most
    /// [`LATE_WINDOWS_KEPT`] entries (the rest count in `total` only).
    pub by_window: BTreeMap<i64, u64>,
}

/// Windows whose late counts are kept one by one.
pub const LATE_WINDOWS_KEPT: usize = 1000;

/// The panes of open windows and the watermark.
pub struct WindowStore {
    pane_ms: i64,
    n: i64,
    panes: BTreeMap<i64, Pane>,
    /// Every window ending at or before this has been emitted.
    watermark: Option<i64>,
    late: LateCounts,
}

impl WindowStore {
    /// An empty store.
    pub fn new(spec: WindowSpec) -> Self {
        WindowStore {
            pane_ms: i64::try_from(spec.slide_ms.max(1)).unwrap_or(i64::MAX),
            n: i64::try_from(spec.panes_per_window().max(1)).unwrap_or(1),
            panes: BTreeMap::new(),
            watermark: None,
            late: LateCounts::default(),
        }
    }

    /// The pane of a time.
    pub fn pane_of(&self, t_ms: i64) -> i64 {
        t_ms.div_euclid(self.pane_ms)
    }

    /// How many of pane `p`'s windows are closed (emitted).
    pub fn closed(&self, p: i64) -> i64 {
        match self.watermark {
            None => 0,
            Some(w) => (w.div_euclid(self.pane_ms) - p).clamp(0, self.n),
        }
    }

    /// The watermark: windows ending at or before it are closed.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Merges a group of pane `p` whose records saw the first `k` windows
    /// of the pane closed already (0 for records on time). A group late
    /// for every window is counted, not merged. Returns whether it was
    /// merged.
    pub fn add(&mut self, p: i64, k: i64, group: GroupState) -> bool {
        let k = k.max(self.closed(p));
        if k >= self.n {
            self.count_late(p, group.rows);
            return false;
        }
        let n = self.n as usize;
        let pane = self.panes.entry(p).or_default();
        if pane.classes.is_empty() {
            pane.classes.resize_with(n, GroupTable::new);
        }
        if let Some(t) = pane.classes.get_mut(k as usize) {
            t.merge_group(group);
        }
        true
    }

    fn count_late(&mut self, p: i64, rows: u64) {
        self.late.total += rows;
        let start = p.saturating_mul(self.pane_ms);
        if self.late.by_window.len() < LATE_WINDOWS_KEPT || self.late.by_window.contains_key(&start)
        {
            *self.late.by_window.entry(start).or_default() += rows;
        }
    }

    /// Late records so far.
    pub fn late(&self) -> &LateCounts {
        &self.late
    }

    /// Raises the watermark to `w` and emits, in order, every window with
    /// data that ends in `(old watermark, w]`.
    pub fn advance(&mut self, w: i64, emit: &mut dyn FnMut(WindowResult)) {
        if self.watermark.is_some_and(|old| old >= w) {
            return;
        }
        let pm = self.pane_ms;
        let n = self.n;
        // Windows q with old < (q + n) * pm <= w.
        let mut q = match self.watermark {
            Some(old) => old.div_euclid(pm) - n + 1,
            None => match self.panes.keys().next() {
                Some(&p) => p - n + 1,
                None => i64::MAX,
            },
        };
        let last = w.div_euclid(pm) - n;
        while q <= last {
            // Skip windows without data.
            let Some((&p, _)) = self.panes.range(q..).next() else {
                break;
            };
            if p > q + n - 1 {
                q = p - n + 1;
                continue;
            }
            if q > last {
                break;
            }
            emit(self.window(q));
            q += 1;
        }
        self.watermark = Some(w);
        // Panes whose last window (q = p) is closed are done.
        let keep_from = w.div_euclid(pm) - n + 1;
        self.panes = self.panes.split_off(&keep_from);
    }

    /// Emits every window with data (end of input).
    pub fn flush(&mut self, emit: &mut dyn FnMut(WindowResult)) {
        if let Some(&p) = self.panes.keys().next_back() {
            let end = (p + self.n).saturating_mul(self.pane_ms);
            self.advance(end, emit);
        }
    }

    /// The time up to which [`WindowStore::flush`] would close windows.
    pub fn flush_point(&self) -> Option<i64> {
        self.panes
            .keys()
            .next_back()
            .map(|&p| (p + self.n).saturating_mul(self.pane_ms))
    }

    /// Merges window `q` from its panes.
    fn window(&mut self, q: i64) -> WindowResult {
        let n = self.n;
        let mut table = GroupTable::new();
        for p in q..q + n {
            // This window is the j-th of pane p: classes 0..=j count in it.
            let j = q - (p - n + 1);
            let last_use = p == q;
            if last_use {
                if let Some(pane) = self.panes.remove(&p) {
                    for t in pane.classes.into_iter().take(j as usize + 1) {
                        table.merge(t.into_partial());
                    }
                }
            } else if let Some(pane) = self.panes.get(&p) {
                for t in pane.classes.iter().take(j as usize + 1) {
                    for g in t.groups() {
                        table.merge_group(g);
                    }
                }
            }
        }
        let groups = table.into_sorted();
        WindowResult {
            start_ms: q.saturating_mul(self.pane_ms),
            end_ms: (q + n).saturating_mul(self.pane_ms),
            records: groups.iter().map(|g| g.rows).sum(),
            groups,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_bytes::ByteBuf;

    fn g(key: &str, rows: u64) -> GroupState {
        GroupState {
            key: vec![Some(ByteBuf::from(key.as_bytes().to_vec()))],
            rows,
            values: vec![],
        }
    }

    fn collect(store: &mut WindowStore, w: i64) -> Vec<(i64, i64, u64)> {
        let mut out = Vec::new();
        store.advance(w, &mut |r| out.push((r.start_ms, r.end_ms, r.records)));
        out
    }

    #[test]
    fn tumbling_windows_close_at_the_watermark() {
        let mut s = WindowStore::new(WindowSpec::tumbling(10));
        assert!(s.add(s.pane_of(3), 0, g("a", 1)));
        assert!(s.add(s.pane_of(15), 0, g("a", 2)));
        assert!(s.add(s.pane_of(47), 0, g("b", 4)));
        assert_eq!(collect(&mut s, 9), vec![]);
        assert_eq!(collect(&mut s, 25), vec![(0, 10, 1), (10, 20, 2)]);
        // Late for [10, 20): counted, not merged.
        assert!(!s.add(s.pane_of(12), 0, g("a", 5)));
        assert_eq!(s.late().total, 5);
        assert_eq!(s.late().by_window.get(&10), Some(&5));
        // On time for [20, 30) even though it arrives after the watermark 25.
        assert!(s.add(s.pane_of(29), 0, g("a", 1)));
        let mut out = Vec::new();
        s.flush(&mut |r| out.push((r.start_ms, r.records)));
        assert_eq!(out, vec![(20, 1), (40, 4)]);
    }

    #[test]
    fn sliding_windows_merge_panes_and_classes() {
        // size 30, slide 10: windows [q*10, q*10+30).
        let mut s = WindowStore::new(WindowSpec {
            size_ms: 30,
            slide_ms: 10,
        });
        s.add(0, 0, g("a", 1)); // t in [0,10)
        s.add(1, 0, g("a", 2)); // [10,20)
        assert_eq!(collect(&mut s, 20), vec![(-20, 10, 1), (-10, 20, 3)]);
        // A record of pane 0 arriving now: windows ending 10 and 20 closed,
        // it still counts in [0, 30).
        assert!(s.add(0, 0, g("a", 4)));
        // A record of pane 0 whose batch already saw [0,30) closed: late.
        assert!(!s.add(0, 3, g("a", 8)));
        assert_eq!(s.late().total, 8);
        assert_eq!(collect(&mut s, 30), vec![(0, 30, 7)]);
        let mut out = Vec::new();
        s.flush(&mut |r| out.push((r.start_ms, r.records)));
        assert_eq!(out, vec![(10, 2)]);
    }
}
