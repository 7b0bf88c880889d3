//! Traffic split between the versions of one model: which version answers a request that
//! names none. Weighted at random, or sticky: the same key always lands on the same version,
//! on every replica, because the hash (FNV-1a) is fixed rather than seeded per process.

use std::cell::Cell;

/// A weighted choice between versions, built from a model's `[traffic]` config and the
/// versions actually loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficSplit {
    /// (version, cumulative weight), ascending by cumulative weight.
    table: Vec<(u64, u64)>,
    total: u64,
    /// Request header whose value makes the choice sticky.
    pub sticky_header: Option<String>,
}

impl TrafficSplit {
    /// `weights` as (version, weight); versions not in `loaded` and zero weights are left out.
    /// `None` when nothing is left to choose from.
    pub fn new(
        weights: &[(u64, u32)],
        loaded: &[u64],
        sticky_header: Option<String>,
    ) -> Option<Self> {
        let mut total = 0u64;
        let mut table = Vec::new();
        for &(version, weight) in weights {
            if weight > 0 && loaded.contains(&version) {
                total += u64::from(weight);
                table.push((version, total));
            }
        }
        (total > 0).then_some(Self {
            table,
            total,
            sticky_header: sticky_header.map(|h| h.to_ascii_lowercase()),
        })
    }

    /// The version for one request: by the hash of `key` when given, otherwise at random.
    pub fn pick(&self, key: Option<&[u8]>) -> u64 {
        let draw = match key {
            Some(k) => fnv1a(k),
            None => random_u64(),
        } % self.total;
        // The first entry whose cumulative weight exceeds the draw.
        let i = self.table.partition_point(|&(_, cum)| cum <= draw);
        self.table[i.min(self.table.len() - 1)].0
    }

    pub fn versions(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut prev = 0;
        self.table.iter().map(move |&(v, cum)| {
            let w = cum - prev;
            prev = cum;
            (v, w)
        })
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV's low bits mix poorly for short keys; a final avalanche (from splitmix64) fixes that.
    splitmix(h)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A per-thread splitmix64 stream seeded from the process's random hasher state: cheap,
/// lock-free, and good enough for splitting traffic (not for anything secret).
pub(crate) fn random_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(&h as *const _ as usize);
            h.finish()
        });
    }
    STATE.with(|s| {
        let next = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(next);
        splitmix(next)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ninety_ten_split_is_within_tolerance() {
        let split = TrafficSplit::new(&[(1, 90), (2, 10)], &[1, 2], None).unwrap();
        let n = 100_000;
        let twos = (0..n).filter(|_| split.pick(None) == 2).count() as f64;
        // Binomial(n, 0.1): sd = sqrt(n p (1-p)) ≈ 95; allow 5 sd (false alarm ~ 1 in 3.5M).
        let sd = (n as f64 * 0.1 * 0.9).sqrt();
        assert!(
            (twos - 10_000.0).abs() < 5.0 * sd,
            "{twos} of {n} went to version 2"
        );
    }

    #[test]
    fn sticky_keys_always_land_on_the_same_version() {
        let split = TrafficSplit::new(&[(1, 50), (2, 50)], &[1, 2], Some("X-User".into())).unwrap();
        assert_eq!(split.sticky_header.as_deref(), Some("x-user"));
        let mut seen = [0usize; 3];
        for user in 0..1000 {
            let key = format!("user-{user}");
            let first = split.pick(Some(key.as_bytes()));
            for _ in 0..5 {
                assert_eq!(split.pick(Some(key.as_bytes())), first);
            }
            seen[first as usize] += 1;
        }
        // Keys still spread over both versions.
        assert!(seen[1] > 400 && seen[2] > 400, "{seen:?}");
    }

    #[test]
    fn unloaded_and_zero_weights_are_left_out() {
        let split = TrafficSplit::new(&[(1, 0), (2, 10), (3, 10)], &[1, 2], None).unwrap();
        for _ in 0..100 {
            assert_eq!(split.pick(None), 2);
        }
        assert_eq!(split.versions().collect::<Vec<_>>(), vec![(2, 10)]);
        assert!(TrafficSplit::new(&[(1, 0)], &[1], None).is_none());
        assert!(TrafficSplit::new(&[(5, 1)], &[1], None).is_none());
    }
}
