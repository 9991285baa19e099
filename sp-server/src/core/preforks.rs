//! The prefork registry: forked processes waiting for their host fork
//! child to claim them with a cookie.
//!
//! Unlike the reference, an unclaimed prefork does not live forever: each
//! parent connection may hold at most `cap` at once, and each expires after
//! `ttl`. A prefork outlives its parent's connection (the parent may exit
//! right after the host fork, as `daemon()` does). Cookies come from the
//! OS random source and are compared in constant time; the map is keyed by
//! a secretly keyed hash of the cookie, so lookup timing tells an attacker
//! nothing about the stored cookies.
//!
//! Expiry is O(1) per prefork: every prefork lives the same `ttl`, so
//! their deadlines arrive in the order they were registered, and a queue
//! in that order (with claimed preforks skipped when they reach its front)
//! gives the next deadline and the expired ones without a scan.

use crate::kernel::ProcId;
use sp_proto::{Cookie, COOKIE_LEN};

/// Cookies drawn from the OS random source at once.
const POOL_COOKIES: usize = 64;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

struct Entry {
    cookie: Cookie,
    proc: ProcId,
    owner: u64,
    /// Registration number, to find the entry from the expiry queue.
    serial: u64,
}

/// Why a prefork could not be registered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PreforkError {
    /// The parent holds `cap` unclaimed preforks already.
    Cap,
    /// The OS random source failed.
    Random,
}

pub(crate) struct Registry {
    by_hash: HashMap<u64, Vec<Entry>>,
    /// (deadline, cookie hash, serial) in registration order, so in
    /// deadline order; entries claimed meanwhile are skipped.
    expiry: VecDeque<(Instant, u64, u64)>,
    next_serial: u64,
    per_owner: HashMap<u64, usize>,
    hasher: RandomState,
    /// Cookie bytes drawn from the OS and not handed out yet: one
    /// `getrandom(2)` per [`POOL_COOKIES`] cookies instead of one each.
    /// Every byte is used once.
    pool: Vec<u8>,
    cap: usize,
    ttl: Duration,
    len: usize,
}

fn ct_eq(a: &Cookie, b: &Cookie) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

impl Registry {
    pub(crate) fn new(cap: usize, ttl: Duration) -> Registry {
        Registry {
            by_hash: HashMap::new(),
            expiry: VecDeque::new(),
            next_serial: 0,
            per_owner: HashMap::new(),
            hasher: RandomState::new(),
            pool: Vec::new(),
            cap,
            ttl,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether `owner` may register one more.
    pub(crate) fn has_room(&self, owner: u64) -> bool {
        self.per_owner.get(&owner).copied().unwrap_or(0) < self.cap
    }

    /// Registers `proc` for `owner` under a fresh cookie.
    pub(crate) fn insert(
        &mut self,
        owner: u64,
        proc: ProcId,
        now: Instant,
    ) -> Result<Cookie, PreforkError> {
        if !self.has_room(owner) {
            return Err(PreforkError::Cap);
        }
        let cookie = self.fresh_cookie()?;
        let h = self.hasher.hash_one(cookie);
        let serial = self.next_serial;
        self.next_serial += 1;
        self.by_hash.entry(h).or_default().push(Entry {
            cookie,
            proc,
            owner,
            serial,
        });
        self.expiry.push_back((now + self.ttl, h, serial));
        *self.per_owner.entry(owner).or_default() += 1;
        self.len += 1;
        Ok(cookie)
    }

    /// Sixteen bytes from the OS random source never handed out before.
    fn fresh_cookie(&mut self) -> Result<Cookie, PreforkError> {
        if self.pool.len() < COOKIE_LEN {
            let mut fresh = vec![0u8; COOKIE_LEN * POOL_COOKIES];
            getrandom::fill(&mut fresh).map_err(|_| PreforkError::Random)?;
            self.pool = fresh;
        }
        let at = self.pool.len() - COOKIE_LEN;
        let mut cookie = [0u8; COOKIE_LEN];
        cookie.copy_from_slice(&self.pool[at..]);
        // Spent bytes leave memory at once (not just the pool's length).
        self.pool[at..].fill(0);
        self.pool.truncate(at);
        Ok(cookie)
    }

    fn forget_owner(&mut self, owner: u64) {
        if let Some(n) = self.per_owner.get_mut(&owner) {
            *n -= 1;
            if *n == 0 {
                self.per_owner.remove(&owner);
            }
        }
        self.len -= 1;
    }

    /// Removes and returns the prefork registered under `cookie`.
    pub(crate) fn take(&mut self, cookie: &Cookie) -> Option<ProcId> {
        let h = self.hasher.hash_one(cookie);
        let bucket = self.by_hash.get_mut(&h)?;
        let mut found = None;
        for (i, e) in bucket.iter().enumerate() {
            if ct_eq(&e.cookie, cookie) {
                found = Some(i);
            }
        }
        let e = bucket.swap_remove(found?);
        if bucket.is_empty() {
            self.by_hash.remove(&h);
        }
        self.forget_owner(e.owner);
        self.compact();
        Some(e.proc)
    }

    /// Drops claimed preforks from the expiry queue once they are most of
    /// it, so a client that forks fast does not grow it for a whole `ttl`;
    /// amortised O(1) per claim.
    fn compact(&mut self) {
        if self.expiry.len() <= 2 * self.len + 64 {
            return;
        }
        let by_hash = &self.by_hash;
        self.expiry.retain(|&(_, h, serial)| {
            by_hash
                .get(&h)
                .is_some_and(|b| b.iter().any(|e| e.serial == serial))
        });
    }

    /// Removes every prefork expired at `now`; returns their processes.
    /// Touches only the expired ones (and claimed ones that were ahead of
    /// them in the queue).
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<ProcId> {
        let mut gone = Vec::new();
        while let Some(&(deadline, h, serial)) = self.expiry.front() {
            if deadline > now {
                break;
            }
            self.expiry.pop_front();
            let Some(bucket) = self.by_hash.get_mut(&h) else {
                continue; // claimed
            };
            let Some(i) = bucket.iter().position(|e| e.serial == serial) else {
                continue; // claimed
            };
            let e = bucket.swap_remove(i);
            if bucket.is_empty() {
                self.by_hash.remove(&h);
            }
            self.forget_owner(e.owner);
            gone.push(e.proc);
        }
        gone
    }

    /// The earliest expiry, if any prefork waits: the front of the queue
    /// (it may belong to a prefork claimed since; waking for it then finds
    /// nothing to do, once).
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        self.expiry.front().map(|e| e.0)
    }

    /// Removes everything (server shutdown).
    pub(crate) fn drain(&mut self) -> Vec<ProcId> {
        let all: Vec<ProcId> = self
            .by_hash
            .drain()
            .flat_map(|(_, b)| b)
            .map(|e| e.proc)
            .collect();
        self.per_owner.clear();
        self.expiry.clear();
        self.len = 0;
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_claim_once_and_wrong_ones_fail() {
        let now = Instant::now();
        let mut r = Registry::new(4, Duration::from_secs(60));
        let c = r.insert(1, ProcId(7), now).unwrap();
        let mut wrong = c;
        wrong[15] ^= 1;
        assert_eq!(r.take(&wrong), None);
        assert_eq!(r.take(&c), Some(ProcId(7)));
        assert_eq!(r.take(&c), None);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn cap_per_owner_and_ttl() {
        let now = Instant::now();
        let mut r = Registry::new(2, Duration::from_secs(5));
        r.insert(1, ProcId(1), now).unwrap();
        r.insert(1, ProcId(2), now).unwrap();
        assert_eq!(r.insert(1, ProcId(3), now), Err(PreforkError::Cap));
        // Another owner has its own allowance.
        r.insert(2, ProcId(4), now + Duration::from_secs(3))
            .unwrap();
        assert_eq!(r.next_expiry(), Some(now + Duration::from_secs(5)));
        let mut gone = r.expire(now + Duration::from_secs(5));
        gone.sort();
        assert_eq!(gone, vec![ProcId(1), ProcId(2)]);
        assert!(r.has_room(1));
        assert_eq!(r.len(), 1);
        assert_eq!(r.drain(), vec![ProcId(4)]);
    }

    #[test]
    fn cookies_are_never_handed_out_twice() {
        let now = Instant::now();
        let mut r = Registry::new(1, Duration::from_secs(5));
        let mut seen = std::collections::HashSet::new();
        // Past several refills of the pool.
        for i in 0..5 * POOL_COOKIES as u64 {
            let c = r.insert(i, ProcId(i), now).unwrap();
            assert_ne!(c, [0u8; COOKIE_LEN]);
            assert!(seen.insert(c), "cookie {c:?} handed out twice");
        }
    }

    #[test]
    fn claimed_preforks_neither_expire_nor_pile_up() {
        let now = Instant::now();
        let mut r = Registry::new(1, Duration::from_secs(5));
        for i in 0..10_000 {
            let c = r.insert(i, ProcId(i), now).unwrap();
            assert_eq!(r.take(&c), Some(ProcId(i)));
        }
        assert!(r.expiry.len() <= 64, "queue holds {}", r.expiry.len());
        let kept = r.insert(1, ProcId(1), now).unwrap();
        let claimed = r.insert(2, ProcId(2), now).unwrap();
        r.take(&claimed);
        assert_eq!(r.expire(now + Duration::from_secs(5)), vec![ProcId(1)]);
        assert_eq!(r.take(&kept), None);
        assert_eq!(r.next_expiry(), None);
        assert_eq!(r.len(), 0);
    }
}
