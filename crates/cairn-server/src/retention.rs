use std::time::Duration;

use crate::AppState;

const DAY_MILLIS: i64 = 86_400_000;
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

impl AppState {
    /// The oldest eventTime the history keeps, or `None` when it keeps everything.
    pub fn retention_cutoff_millis(&self) -> Option<i64> {
        match self.settings.retention_days {
            0 => None,
            days => Some(self.clock.now_millis() - i64::from(days) * DAY_MILLIS),
        }
    }
}

/// Sweeps expired events now and then hourly, forever. Lookups already hide expired events,
/// so the sweep only reclaims space; its timing is not visible to clients.
pub async fn run_retention_sweeper(state: AppState) {
    loop {
        if let Some(cutoff) = state.retention_cutoff_millis() {
            let store = state.store.clone();
            match tokio::task::spawn_blocking(move || store.sweep_older_than(cutoff)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(removed)) => tracing::info!(removed, "retention swept expired events"),
                Ok(Err(error)) => tracing::error!(%error, "retention sweep failed"),
                Err(error) => tracing::error!(%error, "retention sweep task failed"),
            }
        }
        tokio::time::sleep(SWEEP_INTERVAL).await;
    }
}
