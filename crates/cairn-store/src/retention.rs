//! The retention in force belongs to the data directory: it is kept in the store's state
//! (`settings/retention_days`) and read by every `serve` and `import` of that directory. A
//! flag, variable or TOML value may lengthen it (nothing is removed), but never shorten it,
//! even when nothing would be removed today: that takes `cairn retention --days N --apply`, which
//! says first how many events it removes. A data directory that already holds events but
//! no recorded retention (made before it was kept) keeps everything until told otherwise.

use cairn_model::StateChange;

use crate::{EventStore, StoreError};

pub const DEFAULT_RETENTION_DAYS: u32 = 90;
const SETTINGS: &str = "settings";
const RETENTION_DAYS: &str = "retention_days";
const DAY_MILLIS: i64 = 86_400_000;

/// The oldest eventTime kept under `days` at `now_millis` (`None`: everything is kept).
pub fn cutoff_millis(days: u32, now_millis: i64) -> Option<i64> {
    (days != 0).then(|| now_millis - i64::from(days) * DAY_MILLIS)
}

/// The retention recorded for the data directory, if any.
pub fn recorded(store: &dyn EventStore) -> Result<Option<u32>, StoreError> {
    let entries = store.state(SETTINGS)?;
    match entries.iter().find(|(key, _)| key == RETENTION_DAYS) {
        Some((_, value)) => value.parse().map(Some).map_err(|_| {
            StoreError::Corrupt(format!(
                "the recorded retention {value:?} is not a number of days"
            ))
        }),
        None => Ok(None),
    }
}

fn record(store: &dyn EventStore, days: u32) -> Result<(), StoreError> {
    store
        .submit_with_state(
            Vec::new(),
            vec![StateChange::put(SETTINGS, RETENTION_DAYS, days.to_string())],
        )?
        .wait()?;
    Ok(())
}

/// Whether `wanted` keeps at least every event `current` keeps.
fn keeps_at_least(wanted: u32, current: u32) -> bool {
    wanted == 0 || (current != 0 && wanted >= current)
}

/// The retention to run with: the recorded one, or `requested` when it removes nothing the
/// recorded one keeps (it is then recorded). Refuses, naming what it would remove, a
/// `requested` retention that would remove events.
pub fn settle(
    store: &dyn EventStore,
    requested: Option<u32>,
    now_millis: i64,
) -> Result<u32, StoreError> {
    let current = recorded(store)?;
    let settled = match (current, requested) {
        (Some(current), None) => return Ok(current),
        (Some(current), Some(requested)) if keeps_at_least(requested, current) => {
            if requested != current {
                tracing::info!(
                    from = current,
                    to = requested,
                    "the data directory's retention is lengthened"
                );
            }
            requested
        }
        (None, None) if store.count()? > 0 => {
            tracing::info!("this data directory holds events but no recorded retention: it keeps every event until `cairn retention --days N --apply` says otherwise");
            0
        }
        (None, None) => DEFAULT_RETENTION_DAYS,
        (None, Some(requested)) if store.count()? == 0 => requested,
        // Shortening is refused even when nothing would go today: the sweeper would remove
        // events later, as they age past the shorter retention nobody agreed to.
        (current, Some(requested)) => {
            let removed = cutoff_millis(requested, now_millis)
                .map(|cutoff| store.count_older_than(cutoff))
                .transpose()?
                .unwrap_or(0);
            let current = match current {
                Some(0) | None => "every event".to_owned(),
                Some(days) => format!("{days} days of events"),
            };
            return Err(StoreError::Refused(format!(
                "this data directory keeps {current}; a retention of {requested} days would remove \
                 {removed} events now and more as they age. Nothing was changed. To shorten it, run \
                 `cairn retention --data-dir DIR --days {requested} --apply`; to keep them, \
                 leave --retention-days out."
            )));
        }
    };
    if current != Some(settled) {
        record(store, settled)?;
    }
    Ok(settled)
}

/// `cairn retention`: shows the retention, what a new one would remove, and with `apply`
/// records it and removes what it no longer keeps. Returns the lines to print.
pub fn change(
    store: &dyn EventStore,
    days: Option<u32>,
    apply: bool,
    now_millis: i64,
) -> Result<Vec<String>, StoreError> {
    let current = recorded(store)?;
    let describe = |days: Option<u32>| match days {
        None => "not recorded (every event is kept)".to_owned(),
        Some(0) => "0 (every event is kept)".to_owned(),
        Some(days) => format!("{days} days"),
    };
    let mut lines = vec![format!("retention: {}", describe(current))];
    let Some(days) = days else {
        return Ok(lines);
    };
    let cutoff = cutoff_millis(days, now_millis);
    let removed = match cutoff {
        Some(cutoff) => store.count_older_than(cutoff)?,
        None => 0,
    };
    let events = store.count()?;
    if !apply {
        lines.push(format!(
            "a retention of {} would remove {removed} of {events} events; run again with --apply to do it",
            describe(Some(days))
        ));
        return Ok(lines);
    }
    record(store, days)?;
    let swept = match cutoff {
        Some(cutoff) => store.sweep_older_than(cutoff)?,
        None => 0,
    };
    lines.push(format!(
        "retention is now {}; removed {swept} of {events} events",
        describe(Some(days))
    ));
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::sample_event;
    use crate::SqliteEventStore;

    const NOW: i64 = 1_800_000_000_000;

    fn store_with_old_event() -> (tempfile::TempDir, SqliteEventStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteEventStore::open(dir.path()).unwrap();
        let ten_days_ago = (NOW - 10 * DAY_MILLIS) / 1000;
        store
            .append(vec![sample_event(
                "old",
                ten_days_ago,
                "Describe",
                "a",
                "AKIA1",
            )])
            .unwrap();
        (dir, store)
    }

    #[test]
    fn a_new_directory_takes_the_requested_or_default_retention_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteEventStore::open(dir.path()).unwrap();
        assert_eq!(settle(&store, None, NOW).unwrap(), DEFAULT_RETENTION_DAYS);
        assert_eq!(recorded(&store).unwrap(), Some(DEFAULT_RETENTION_DAYS));
        let other = tempfile::tempdir().unwrap();
        let store = SqliteEventStore::open(other.path()).unwrap();
        assert_eq!(settle(&store, Some(0), NOW).unwrap(), 0);
        assert_eq!(
            settle(&store, None, NOW).unwrap(),
            0,
            "a later run without the flag keeps what the directory recorded"
        );
    }

    #[test]
    fn no_default_or_shorter_request_removes_events_the_directory_keeps() {
        let (_dir, store) = store_with_old_event();
        assert_eq!(
            settle(&store, None, NOW).unwrap(),
            0,
            "events but no recorded retention: keep everything"
        );
        let refused = settle(&store, Some(7), NOW).unwrap_err().to_string();
        assert!(refused.contains("would remove 1 events now"), "{refused}");
        assert!(refused.contains("cairn retention"), "{refused}");
        assert_eq!(recorded(&store).unwrap(), Some(0), "nothing was changed");
        assert_eq!(store.count().unwrap(), 1);
        let refused = settle(&store, Some(30), NOW).unwrap_err().to_string();
        assert!(
            refused.contains("would remove 0 events now and more as they age"),
            "a retention that removes nothing today still shortens: {refused}"
        );
        assert_eq!(recorded(&store).unwrap(), Some(0), "nothing was changed");
        assert_eq!(settle(&store, Some(0), NOW).unwrap(), 0, "kept");
        change(&store, Some(30), true, NOW).unwrap();
        assert_eq!(settle(&store, Some(365), NOW).unwrap(), 365, "lengthened");
        assert!(settle(&store, Some(90), NOW).is_err(), "shortened again");
        assert_eq!(settle(&store, None, NOW).unwrap(), 365);
    }

    #[test]
    fn the_retention_command_says_what_it_removes_and_removes_it_only_when_applied() {
        let (_dir, store) = store_with_old_event();
        let preview = change(&store, Some(7), false, NOW).unwrap();
        assert!(
            preview[1].contains("would remove 1 of 1 events"),
            "{preview:?}"
        );
        assert_eq!(store.count().unwrap(), 1);
        let applied = change(&store, Some(7), true, NOW).unwrap();
        assert!(applied[1].contains("removed 1 of 1 events"), "{applied:?}");
        assert_eq!(store.count().unwrap(), 0);
        assert_eq!(recorded(&store).unwrap(), Some(7));
    }
}
