//! Kafka's `queued.max.request.bytes`: one pool of memory for the requests
//! read off every connection and not yet handled. A connection reserves a
//! request's size before reading its body and holds the reservation until the
//! request is handled; when the pool is spent it stops reading its socket
//! (back-pressure through TCP) until memory comes back. Waiters are served in
//! order, so large requests are not starved by small ones.
//!
//! Kafka's default (-1) has no pool: each request is bounded only by
//! `socket.request.max.bytes`. A request larger than the whole pool takes all
//! of it (it is served alone), so memory held by requests stays below
//! max(pool, the largest request).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone)]
pub struct RequestMemoryPool {
    pool: Option<(Arc<Semaphore>, u32)>,
}

/// Memory reserved for one request; returned to the pool when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
}

impl RequestMemoryPool {
    /// A pool of `bytes` (`queued.max.request.bytes`; 0 or less: no pool).
    pub fn new(bytes: i64) -> Self {
        let pool = (bytes > 0).then(|| {
            let cap = bytes.min(i64::from(u32::MAX)) as u32;
            (Arc::new(Semaphore::new(cap as usize)), cap)
        });
        Self { pool }
    }

    /// Waits until `size` bytes (at most the whole pool) are free and
    /// reserves them.
    pub async fn reserve(&self, size: usize) -> Reservation {
        let Some((sem, cap)) = &self.pool else {
            return Reservation { _permit: None };
        };
        let n = (size.min(*cap as usize) as u32).max(1);
        // The semaphore is never closed.
        let permit = sem.clone().acquire_many_owned(n).await.ok();
        Reservation { _permit: permit }
    }

    /// Bytes free now (`None` without a pool).
    pub fn available(&self) -> Option<usize> {
        self.pool.as_ref().map(|(s, _)| s.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_for_memory_and_return_it() {
        let pool = RequestMemoryPool::new(100);
        let a = pool.reserve(60).await;
        assert_eq!(pool.available(), Some(40));
        // 50 does not fit until `a` is handled.
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.reserve(50).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(a);
        let b = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("served once memory came back")
            .unwrap();
        assert_eq!(pool.available(), Some(50));
        drop(b);
        // Larger than the pool: takes all of it.
        let big = pool.reserve(1000).await;
        assert_eq!(pool.available(), Some(0));
        drop(big);
        assert_eq!(pool.available(), Some(100));
    }

    #[tokio::test]
    async fn no_pool_never_waits() {
        let pool = RequestMemoryPool::new(-1);
        let _a = pool.reserve(usize::MAX).await;
        assert_eq!(pool.available(), None);
    }
}
