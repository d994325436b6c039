//! [`ByteBudget`]: one limit on every byte the proxy holds across all connections — request
//! bodies read ahead to find their model, response bodies (and their decoded text) kept to be
//! read at their end. A [`Charge`] holds bytes of the budget until it is dropped or released,
//! so what a connection held comes back however it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The budget shared by every connection of a proxy.
#[derive(Debug, Clone)]
pub(crate) struct ByteBudget(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    limit: usize,
    used: AtomicUsize,
    peak: AtomicUsize,
}

impl ByteBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> ByteBudget {
        ByteBudget(Arc::new(Inner {
            limit,
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }))
    }

    /// An empty charge, to grow with [`Charge::take`].
    pub fn charge(&self) -> Charge {
        Charge {
            budget: Arc::clone(&self.0),
            bytes: 0,
        }
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Relaxed)
    }

    /// The most bytes held at once.
    pub fn peak(&self) -> usize {
        self.0.peak.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.0.limit
    }
}

/// Bytes held of a [`ByteBudget`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<Inner>,
    bytes: usize,
}

impl Charge {
    /// Takes `n` more bytes; `false` (and nothing taken) when the budget has not that many left.
    pub fn take(&mut self, n: usize) -> bool {
        let inner = &*self.budget;
        let mut used = inner.used.load(Ordering::Relaxed);
        loop {
            let Some(after) = used.checked_add(n).filter(|a| *a <= inner.limit) else {
                return false;
            };
            match inner.used.compare_exchange_weak(
                used,
                after,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    inner.peak.fetch_max(after, Ordering::Relaxed);
                    self.bytes += n;
                    return true;
                }
                Err(now) => used = now,
            }
        }
    }

    /// Gives back `n` of the bytes held (at most all of them).
    pub fn release(&mut self, n: usize) {
        let n = n.min(self.bytes);
        self.bytes -= n;
        self.budget.used.fetch_sub(n, Ordering::Relaxed);
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_bounded_and_given_back() {
        let budget = ByteBudget::new(100);
        let mut a = budget.charge();
        let mut b = budget.charge();
        assert!(a.take(60));
        assert!(!b.take(41), "over the limit");
        assert!(b.take(40));
        assert_eq!(budget.used(), 100);
        a.release(10);
        assert_eq!((a.bytes(), budget.used()), (50, 90));
        drop(a);
        drop(b);
        assert_eq!((budget.used(), budget.peak()), (0, 100));
        assert!(!budget.charge().take(usize::MAX));
    }
}
