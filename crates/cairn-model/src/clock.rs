use std::sync::atomic::{AtomicI64, Ordering};

/// Where "now" comes from, so retention, token expiry and clock-skew checks are testable.
pub trait Clock: Send + Sync + 'static {
    fn now_millis(&self) -> i64;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock that stands still until told to move.
#[derive(Debug, Default)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    pub fn new(epoch_millis: i64) -> Self {
        Self(AtomicI64::new(epoch_millis))
    }

    pub fn set(&self, epoch_millis: i64) {
        self.0.store(epoch_millis, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Where event and request IDs come from.
pub trait IdGen: Send + Sync + 'static {
    fn new_id(&self) -> String;
}

/// Time-ordered (version 7) UUIDs: unique like AWS's random ones, and appended in order to
/// the store's eventID index instead of at random places in it.
#[derive(Debug, Default, Clone, Copy)]
pub struct TimeOrderedIds;

impl IdGen for TimeOrderedIds {
    fn new_id(&self) -> String {
        uuid::Uuid::now_v7().to_string()
    }
}
