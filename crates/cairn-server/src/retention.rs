//! Retention at run time. The retention in force is the data directory's, recorded in the
//! store (`cairn_store::retention`); the sweeper re-reads it every minute, so a change made
//! beside a running server (`cairn import --retention-days 0`, `cairn retention --apply`) is
//! followed, and removes events only under the recorded retention.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::AppState;

const DAY_MILLIS: i64 = 86_400_000;
const REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// Sweeps this many refreshes apart: hourly.
const REFRESHES_PER_SWEEP: u32 = 60;

/// The retention in days (0 keeps everything), shared by lookups and the sweeper.
#[derive(Clone, Debug, Default)]
pub struct Retention(Arc<AtomicU32>);

impl Retention {
    pub fn new(days: u32) -> Self {
        Self(Arc::new(AtomicU32::new(days)))
    }

    pub fn days(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, days: u32) {
        self.0.store(days, Ordering::Relaxed);
    }
}

impl AppState {
    /// The oldest eventTime the history keeps, or `None` when it keeps everything.
    pub fn retention_cutoff_millis(&self) -> Option<i64> {
        match self.settings.retention.days() {
            0 => None,
            days => Some(self.clock.now_millis() - i64::from(days) * DAY_MILLIS),
        }
    }
}

/// Follows the recorded retention every minute and sweeps expired events hourly, forever.
/// Lookups already hide expired events, so the sweep only reclaims space; its timing is not
/// visible to clients.
pub async fn run_retention_sweeper(state: AppState) {
    let mut refreshes = 0u32;
    loop {
        let store = state.store.clone();
        match tokio::task::spawn_blocking(move || cairn_store::retention::recorded(store.as_ref()))
            .await
        {
            Ok(Ok(Some(days))) => state.settings.retention.set(days),
            Ok(Ok(None)) => {}
            Ok(Err(error)) => tracing::error!(%error, "cannot read the recorded retention"),
            Err(error) => tracing::error!(%error, "retention check task failed"),
        }
        if refreshes.is_multiple_of(REFRESHES_PER_SWEEP) {
            sweep(&state).await;
        }
        refreshes = refreshes.wrapping_add(1);
        tokio::time::sleep(REFRESH_INTERVAL).await;
    }
}

async fn sweep(state: &AppState) {
    let Some(cutoff) = state.retention_cutoff_millis() else {
        return;
    };
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.sweep_older_than(cutoff)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(removed)) => tracing::info!(removed, "retention swept expired events"),
        Ok(Err(error)) => tracing::error!(%error, "retention sweep failed"),
        Err(error) => tracing::error!(%error, "retention sweep task failed"),
    }
}
