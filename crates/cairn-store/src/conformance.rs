//! The behaviour every [`EventStore`] backend must show. A backend's tests call
//! [`event_store_conformance!`](crate::event_store_conformance) with a function that opens
//! the backend over a fresh directory; each check below becomes one test.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use cairn_model::{
    CloudTrailRecord, EventCategory, IndexedEvent, LookupAttribute, LookupAttributeKey, StateChange,
};
use serde_json::json;

use crate::{EventStore, HistoryView, LookupQuery, StoreError};

/// A management event as an IAM user `user` with key `key` would produce it.
pub fn sample_event(id: &str, time_secs: i64, name: &str, user: &str, key: &str) -> IndexedEvent {
    let record = json!({
        "eventVersion": "1.11",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": format!("arn:aws:iam::111122223333:user/{user}"),
            "accountId": "111122223333", "accessKeyId": key, "userName": user},
        "eventTime": cairn_model::format_event_time(time_secs * 1000),
        "eventSource": format!("{}.amazonaws.com", name.to_lowercase()),
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "127.0.0.1",
        "userAgent": "conformance",
        "requestParameters": {"n": id},
        "responseElements": null,
        "requestID": format!("req-{id}"),
        "eventID": id,
        "readOnly": name.starts_with("Describe"),
        "resources": [{"ARN": format!("arn:aws:kms:us-east-1:111122223333:key/{id}"), "accountId": "111122223333", "type": "AWS::KMS::Key"}],
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": "111122223333",
        "eventCategory": "Management"
    });
    IndexedEvent::from_record(&CloudTrailRecord::from_value(record).unwrap()).unwrap()
}

fn with_category(mut event: IndexedEvent, category: EventCategory) -> IndexedEvent {
    event.category = category;
    event
}

fn query(attribute: Option<(LookupAttributeKey, &str)>, limit: usize) -> LookupQuery {
    let mut query = LookupQuery::all(HistoryView::Management, limit);
    query.attribute = attribute.map(|(key, value)| LookupAttribute {
        key,
        value: value.to_owned(),
    });
    query
}

fn ids(store: &dyn EventStore, query: &LookupQuery) -> Vec<String> {
    let mut query = query.clone();
    let mut ids = Vec::new();
    loop {
        let page = store.lookup(&query).unwrap();
        assert!(page.events.len() <= query.limit);
        ids.extend(
            page.events
                .iter()
                .map(|stored| stored.event.event_id.clone()),
        );
        match page.next {
            Some(cursor) => query.after = Some(cursor),
            None => return ids,
        }
    }
}

pub fn finds_by_every_attribute(store: &dyn EventStore) {
    store
        .append(vec![
            sample_event("a", 100, "DescribeKey", "alice", "AKIA1"),
            sample_event("b", 200, "DisableKey", "bob", "AKIA2"),
            sample_event("c", 300, "DescribeKey", "bob", "AKIA2"),
        ])
        .unwrap();
    let cases: [(LookupAttributeKey, &str, &[&str]); 11] = [
        (LookupAttributeKey::EventId, "b", &["b"]),
        (LookupAttributeKey::EventId, "zzz", &[]),
        (LookupAttributeKey::EventName, "DescribeKey", &["c", "a"]),
        (LookupAttributeKey::ReadOnly, "true", &["c", "a"]),
        (LookupAttributeKey::ReadOnly, "false", &["b"]),
        (LookupAttributeKey::Username, "bob", &["c", "b"]),
        (
            LookupAttributeKey::ResourceType,
            "AWS::KMS::Key",
            &["c", "b", "a"],
        ),
        (
            LookupAttributeKey::ResourceName,
            "arn:aws:kms:us-east-1:111122223333:key/a",
            &["a"],
        ),
        (
            LookupAttributeKey::EventSource,
            "disablekey.amazonaws.com",
            &["b"],
        ),
        (LookupAttributeKey::AccessKeyId, "AKIA2", &["c", "b"]),
        (LookupAttributeKey::AccessKeyId, "akia2", &[]),
    ];
    for (key, value, expected) in cases {
        assert_eq!(
            ids(store, &query(Some((key, value)), 50)),
            expected,
            "{key} = {value}"
        );
    }
    assert_eq!(ids(store, &query(None, 50)), ["c", "b", "a"]);
}

pub fn finds_by_event_id_across_days(store: &dyn EventStore) {
    const DAY: i64 = 86_400;
    let days = [0, 1, 3, 400, 401];
    store
        .append(
            days.iter()
                .map(|day| {
                    let id = format!("day-{day}");
                    sample_event(&id, day * DAY + 7, "DescribeKey", "alice", "AKIA1")
                })
                .collect(),
        )
        .unwrap();
    for day in days {
        let id = format!("day-{day}");
        let mut by_id = query(Some((LookupAttributeKey::EventId, id.as_str())), 50);
        assert_eq!(ids(store, &by_id), [id.as_str()], "no time bounds");
        by_id.start_millis = Some((day * DAY + 7) * 1000);
        by_id.end_millis = Some((day * DAY + 7) * 1000);
        assert_eq!(ids(store, &by_id), [id.as_str()], "bounds on the event");
        by_id.start_millis = Some((day * DAY + 8) * 1000);
        by_id.end_millis = None;
        assert!(ids(store, &by_id).is_empty(), "starts after the event");
        by_id.start_millis = None;
        by_id.end_millis = Some((day * DAY + 6) * 1000);
        assert!(ids(store, &by_id).is_empty(), "ends before the event");
    }
}

pub fn appends_are_idempotent_by_event_id(store: &dyn EventStore) {
    let first = store
        .append(vec![sample_event(
            "a",
            100,
            "DescribeKey",
            "alice",
            "AKIA1",
        )])
        .unwrap();
    assert_eq!(first.inserted, [true]);
    let again = store
        .append(vec![
            sample_event("a", 999, "Other", "mallory", "AKIA9"),
            sample_event("b", 100, "DescribeKey", "alice", "AKIA1"),
            sample_event("b", 100, "DescribeKey", "alice", "AKIA1"),
        ])
        .unwrap();
    assert_eq!(again.inserted, [false, true, false]);
    assert_eq!(store.count().unwrap(), 2);
    // The first write of an event wins; a later one with the same ID changes nothing.
    assert!(ids(
        store,
        &query(Some((LookupAttributeKey::Username, "mallory")), 50)
    )
    .is_empty());
}

pub fn pages_have_no_gaps_or_duplicates(store: &dyn EventStore) {
    // 3 events per second so that many share an eventTime.
    let events: Vec<_> = (0..257)
        .map(|n| {
            sample_event(
                &format!("e{n:03}"),
                1_000 + n / 3,
                "DescribeKey",
                "alice",
                "AKIA1",
            )
        })
        .collect();
    store.append(events).unwrap();
    for attribute in [None, Some((LookupAttributeKey::EventName, "DescribeKey"))] {
        for limit in [1, 7, 50] {
            let seen = ids(store, &query(attribute, limit));
            assert_eq!(seen.len(), 257, "limit {limit}");
            let unique: HashSet<_> = seen.iter().collect();
            assert_eq!(unique.len(), 257);
            // Newest first, ties in arrival order reversed.
            let expected: Vec<_> = (0..257).rev().map(|n| format!("e{n:03}")).collect();
            assert_eq!(seen, expected);
        }
    }
}

pub fn time_bounds_are_inclusive(store: &dyn EventStore) {
    store
        .append(
            (0..10)
                .map(|n| sample_event(&format!("t{n}"), 100 + n, "DescribeKey", "alice", "AKIA1"))
                .collect(),
        )
        .unwrap();
    for attribute in [None, Some((LookupAttributeKey::AccessKeyId, "AKIA1"))] {
        let mut bounded = query(attribute, 50);
        bounded.start_millis = Some(103_000);
        bounded.end_millis = Some(105_000);
        assert_eq!(ids(store, &bounded), ["t5", "t4", "t3"]);
        bounded.start_millis = Some(105_001);
        bounded.end_millis = Some(105_999);
        assert!(ids(store, &bounded).is_empty());
    }
    let mut by_id = query(Some((LookupAttributeKey::EventId, "t5")), 50);
    by_id.end_millis = Some(104_999);
    assert!(ids(store, &by_id).is_empty());
}

pub fn views_separate_categories(store: &dyn EventStore) {
    store
        .append(vec![
            sample_event("m", 100, "DescribeKey", "alice", "AKIA1"),
            with_category(
                sample_event("d", 101, "DescribeKey", "alice", "AKIA1"),
                EventCategory::Data,
            ),
            with_category(
                sample_event("n", 102, "DescribeKey", "alice", "AKIA1"),
                EventCategory::NetworkActivity,
            ),
            with_category(
                sample_event("i", 103, "DescribeKey", "alice", "AKIA1"),
                EventCategory::Insight,
            ),
        ])
        .unwrap();
    assert_eq!(store.count().unwrap(), 4);
    for attribute in [None, Some((LookupAttributeKey::EventName, "DescribeKey"))] {
        assert_eq!(ids(store, &query(attribute, 50)), ["m"]);
        let mut insight = query(attribute, 50);
        insight.view = HistoryView::Insight;
        assert_eq!(ids(store, &insight), ["i"]);
    }
    assert!(ids(store, &query(Some((LookupAttributeKey::EventId, "d")), 50)).is_empty());
}

pub fn lookups_return_the_whole_event(store: &dyn EventStore) {
    let event = sample_event("a", 100, "DescribeKey", "alice", "AKIA1");
    store.append(vec![event.clone()]).unwrap();
    let page = store.lookup(&query(None, 50)).unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].event, event);
    assert_eq!(page.next, None);
}

pub fn sweep_removes_only_older_events(store: &dyn EventStore) {
    store
        .append(
            (0..20)
                .map(|n| {
                    sample_event(
                        &format!("s{n:02}"),
                        100 + n,
                        "DescribeKey",
                        "alice",
                        "AKIA1",
                    )
                })
                .collect(),
        )
        .unwrap();
    assert_eq!(store.sweep_older_than(110_000).unwrap(), 10);
    assert_eq!(store.count().unwrap(), 10);
    let expected: Vec<_> = (10..20).rev().map(|n| format!("s{n:02}")).collect();
    assert_eq!(ids(store, &query(None, 50)), expected);
    assert_eq!(
        ids(
            store,
            &query(Some((LookupAttributeKey::Username, "alice")), 50)
        ),
        expected
    );
    assert_eq!(
        ids(
            store,
            &query(
                Some((LookupAttributeKey::ResourceType, "AWS::KMS::Key")),
                50
            )
        ),
        expected
    );
    assert_eq!(store.sweep_older_than(110_000).unwrap(), 0);
    // An event swept away may be imported again.
    let again = store
        .append(vec![sample_event(
            "s00",
            100,
            "DescribeKey",
            "alice",
            "AKIA1",
        )])
        .unwrap();
    assert_eq!(again.inserted, [true]);
}

/// A sweep that cuts through several days removes exactly what is older than its cutoff,
/// whatever the backend keeps per day, and the days left behind still take new events.
pub fn sweep_across_days_removes_exactly_the_older_events(store: &dyn EventStore) {
    const DAY: i64 = 86_400;
    let times: Vec<i64> = (0..5)
        .flat_map(|day| [day * DAY, day * DAY + DAY / 2, day * DAY + DAY - 1])
        .collect();
    store
        .append(
            times
                .iter()
                .map(|time| sample_event(&format!("t{time}"), *time, "Get", "alice", "AKIA1"))
                .collect(),
        )
        .unwrap();
    let cutoff_secs = 3 * DAY + DAY / 2;
    let older = times.iter().filter(|time| **time < cutoff_secs).count() as u64;
    assert_eq!(store.count_older_than(cutoff_secs * 1000).unwrap(), older);
    assert_eq!(store.sweep_older_than(cutoff_secs * 1000).unwrap(), older);
    let expected: Vec<String> = times
        .iter()
        .rev()
        .filter(|time| **time >= cutoff_secs)
        .map(|time| format!("t{time}"))
        .collect();
    assert_eq!(ids(store, &query(None, 50)), expected);
    assert_eq!(
        ids(
            store,
            &query(Some((LookupAttributeKey::Username, "alice")), 50)
        ),
        expected
    );
    let swept = format!("t{}", DAY);
    assert!(ids(
        store,
        &query(Some((LookupAttributeKey::EventId, &swept)), 50)
    )
    .is_empty());
    // A swept day may be written again (an older log imported after the sweep).
    let again = store
        .append(vec![sample_event(&swept, DAY, "Get", "alice", "AKIA1")])
        .unwrap();
    assert_eq!(again.inserted, [true]);
    assert_eq!(
        ids(
            store,
            &query(Some((LookupAttributeKey::EventId, &swept)), 50)
        ),
        [swept]
    );
}

/// Sweeps running while appends go on remove only what is old: every fresh append is kept
/// and acknowledged once.
pub fn sweeps_during_appends_keep_every_fresh_event(store: Arc<dyn EventStore>) {
    const DAY: i64 = 86_400;
    store
        .append(
            (0..200)
                .map(|n| sample_event(&format!("old{n}"), n * 600, "Old", "bob", "AKIA2"))
                .collect(),
        )
        .unwrap();
    let writers: Vec<_> = (0..4)
        .map(|thread| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for n in 0..50 {
                    let id = format!("fresh{thread}-{n}");
                    let time = 10 * DAY + thread * 1000 + n;
                    let outcome = store
                        .append(vec![sample_event(&id, time, "New", "alice", "AKIA1")])
                        .unwrap();
                    assert_eq!(outcome.inserted, [true]);
                }
            })
        })
        .collect();
    let sweeper = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            let mut removed = 0;
            for step in 1..=20 {
                removed += store.sweep_older_than(step * 6_000 * 1000).unwrap();
            }
            removed
        })
    };
    for writer in writers {
        writer.join().unwrap();
    }
    assert_eq!(sweeper.join().unwrap(), 200);
    assert_eq!(store.count().unwrap(), 200);
    let kept = ids(
        store.as_ref(),
        &query(Some((LookupAttributeKey::Username, "alice")), 50),
    );
    assert_eq!(kept.len(), 200);
    assert!(ids(
        store.as_ref(),
        &query(Some((LookupAttributeKey::Username, "bob")), 50)
    )
    .is_empty());
}

pub fn concurrent_appends_are_all_kept(store: Arc<dyn EventStore>) {
    let threads: Vec<_> = (0..16)
        .map(|thread| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for n in 0..25 {
                    let id = format!("c{thread}-{n}");
                    let outcome = store
                        .append(vec![sample_event(
                            &id,
                            100 + n,
                            "DescribeKey",
                            "alice",
                            "AKIA1",
                        )])
                        .unwrap();
                    assert_eq!(outcome.inserted, [true]);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(store.count().unwrap(), 400);
    assert_eq!(ids(store.as_ref(), &query(None, 50)).len(), 400);
}

pub fn events_survive_reopening<S: EventStore>(open: impl Fn(&Path) -> S) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .append(vec![sample_event(
                "kept",
                100,
                "DescribeKey",
                "alice",
                "AKIA1",
            )])
            .unwrap();
    }
    let store = open(dir.path());
    assert_eq!(ids(&store, &query(None, 50)), ["kept"]);
}

pub fn state_is_committed_with_events_and_survives_reopening<S: EventStore>(
    open: impl Fn(&Path) -> S,
) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        assert!(store.state("schedules").unwrap().is_empty());
        store
            .submit_with_state(
                vec![sample_event("started", 100, "Start", "alice", "AKIA1")],
                vec![
                    StateChange::put("schedules", "b", "due at 200"),
                    StateChange::put("schedules", "a", "due at 300"),
                    StateChange::put("settings", "retention_days", "7"),
                ],
            )
            .unwrap()
            .wait()
            .unwrap();
        store
            .submit_with_state(
                Vec::new(),
                vec![
                    StateChange::put("schedules", "a", "due at 400"),
                    StateChange::remove("schedules", "b"),
                    StateChange::remove("schedules", "never there"),
                    StateChange::put("settings", "retention_days", "8"),
                ],
            )
            .unwrap()
            .wait()
            .unwrap();
        // Made from a read that is now stale: skipped, the newer value stays.
        store
            .submit_with_state(
                Vec::new(),
                vec![
                    StateChange::remove_if_unchanged("schedules", "a", "due at 300"),
                    StateChange::remove_if_unchanged("settings", "retention_days", "8"),
                    StateChange::put("settings", "retention_days", "7"),
                ],
            )
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(store.count_older_than(101_000).unwrap(), 1);
        assert_eq!(store.count_older_than(100_000).unwrap(), 0);
    }
    let store = open(dir.path());
    assert_eq!(ids(&store, &query(None, 50)), ["started"]);
    assert_eq!(
        store.state("schedules").unwrap(),
        [("a".to_owned(), "due at 400".to_owned())]
    );
    assert_eq!(
        store.state("settings").unwrap(),
        [("retention_days".to_owned(), "7".to_owned())]
    );
    assert_eq!(
        store.state_value("schedules", "a").unwrap().as_deref(),
        Some("due at 400")
    );
    assert_eq!(store.state_value("schedules", "b").unwrap(), None);
    assert_eq!(store.state_value("settings", "a").unwrap(), None);
}

/// A put-if-absent sets an entry once; a submission that requires an entry to hold a value
/// is refused whole (events and changes) when it does not, and made when it does.
pub fn preconditions_make_first_writers_win_and_fence_stale_ones(store: &dyn EventStore) {
    let submit = |events: Vec<IndexedEvent>, changes: Vec<StateChange>| {
        store.submit_with_state(events, changes).unwrap().wait()
    };
    submit(
        Vec::new(),
        vec![StateChange::put_if_absent("leases", "delivery", "node-a 1")],
    )
    .unwrap();
    submit(
        Vec::new(),
        vec![StateChange::put_if_absent("leases", "delivery", "node-b 1")],
    )
    .unwrap();
    assert_eq!(
        store.state_value("leases", "delivery").unwrap().as_deref(),
        Some("node-a 1")
    );
    let fenced = submit(
        vec![sample_event("fenced", 100, "Put", "bob", "AKIA2")],
        vec![
            StateChange::put("positions", "trail", "7"),
            StateChange::require("leases", "delivery", "node-b 1"),
        ],
    );
    assert!(matches!(fenced, Err(StoreError::Refused(_))), "{fenced:?}");
    assert_eq!(store.state_value("positions", "trail").unwrap(), None);
    assert!(ids(
        store,
        &query(Some((LookupAttributeKey::EventId, "fenced")), 5)
    )
    .is_empty());
    assert_eq!(store.count().unwrap(), 0);
    submit(
        vec![sample_event("held", 100, "Put", "alice", "AKIA1")],
        vec![
            StateChange::require("leases", "delivery", "node-a 1"),
            StateChange::put("positions", "trail", "8"),
            StateChange::put_if_unchanged("leases", "delivery", "node-a 2", "node-a 1"),
        ],
    )
    .unwrap();
    assert_eq!(
        store.state_value("positions", "trail").unwrap().as_deref(),
        Some("8")
    );
    assert_eq!(
        store.state_value("leases", "delivery").unwrap().as_deref(),
        Some("node-a 2")
    );
    assert_eq!(ids(store, &query(None, 5)), ["held"]);
    // A requirement of an entry that is not there is unmet too.
    let absent = submit(
        Vec::new(),
        vec![StateChange::require("leases", "nothing", "x")],
    );
    assert!(matches!(absent, Err(StoreError::Refused(_))));
}

/// The feed gives captured events in order after a position, never imported ones (every
/// event gives them too, in their place), and no sequence number twice, even after a sweep
/// removed the newest events.
pub fn the_feed_follows_commits_and_never_reuses_a_number<S: EventStore>(
    open: impl Fn(&Path) -> S,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.last_seq().unwrap(), 0);
    assert!(store.feed(0, 10).unwrap().is_empty());
    store
        .append(vec![
            sample_event("a", 100, "One", "alice", "AKIA1"),
            sample_event("b", 200, "Two", "alice", "AKIA1"),
        ])
        .unwrap();
    store
        .submit_imported(vec![sample_event("imported", 150, "Old", "bob", "AKIA2")])
        .unwrap()
        .wait()
        .unwrap();
    store
        .append(vec![sample_event("c", 300, "Three", "alice", "AKIA1")])
        .unwrap();
    let fed: Vec<String> = store
        .feed(0, 10)
        .unwrap()
        .into_iter()
        .map(|stored| stored.event.event_id)
        .collect();
    assert_eq!(fed, ["a", "b", "c"], "imported events are not fed");
    let every: Vec<(i64, String)> = store
        .every_event(0, 10)
        .unwrap()
        .into_iter()
        .map(|stored| (stored.seq, stored.event.event_id))
        .collect();
    let names: Vec<&str> = every.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(
        names,
        ["a", "b", "imported", "c"],
        "every event, in commit order"
    );
    assert!(every.windows(2).all(|pair| pair[0].0 < pair[1].0));
    let after_import = store.every_event(every[2].0, 10).unwrap();
    assert_eq!(after_import.len(), 1);
    assert_eq!(after_import[0].event.event_id, "c");
    let all = store.feed(0, 10).unwrap();
    let after_first = store.feed(all[0].seq, 1).unwrap();
    assert_eq!(after_first.len(), 1);
    assert_eq!(after_first[0].event.event_id, "b");
    assert!(all.windows(2).all(|pair| pair[0].seq < pair[1].seq));
    let highest = store.last_seq().unwrap();
    assert!(highest >= all[2].seq);
    // Everything swept, the newest included: the next number is still a new one.
    assert_eq!(store.sweep_older_than(i64::MAX).unwrap(), 4);
    assert_eq!(store.last_seq().unwrap(), highest);
    store
        .append(vec![sample_event("d", 400, "Four", "alice", "AKIA1")])
        .unwrap();
    let after = store.feed(highest, 10).unwrap();
    assert_eq!(after.len(), 1);
    assert!(after[0].seq > highest, "a swept number was given again");
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.last_seq().unwrap(), after[0].seq);
}

/// Generates one `#[test]` per conformance check for a backend. `$open` is any expression
/// callable as `Fn(&Path) -> impl EventStore`.
#[macro_export]
macro_rules! event_store_conformance {
    ($open:expr) => {
        mod event_store_conformance {
            #[allow(unused_imports)]
            use super::*;
            use $crate::conformance as checks;

            fn with_store(check: impl FnOnce(&dyn $crate::EventStore)) {
                let dir = tempfile::tempdir().unwrap();
                let store = ($open)(dir.path());
                check(&store);
            }

            #[test]
            fn finds_by_every_attribute() {
                with_store(checks::finds_by_every_attribute);
            }
            #[test]
            fn finds_by_event_id_across_days() {
                with_store(checks::finds_by_event_id_across_days);
            }
            #[test]
            fn appends_are_idempotent_by_event_id() {
                with_store(checks::appends_are_idempotent_by_event_id);
            }
            #[test]
            fn pages_have_no_gaps_or_duplicates() {
                with_store(checks::pages_have_no_gaps_or_duplicates);
            }
            #[test]
            fn time_bounds_are_inclusive() {
                with_store(checks::time_bounds_are_inclusive);
            }
            #[test]
            fn views_separate_categories() {
                with_store(checks::views_separate_categories);
            }
            #[test]
            fn lookups_return_the_whole_event() {
                with_store(checks::lookups_return_the_whole_event);
            }
            #[test]
            fn sweep_removes_only_older_events() {
                with_store(checks::sweep_removes_only_older_events);
            }
            #[test]
            fn preconditions_make_first_writers_win_and_fence_stale_ones() {
                with_store(checks::preconditions_make_first_writers_win_and_fence_stale_ones);
            }
            #[test]
            fn sweep_across_days_removes_exactly_the_older_events() {
                with_store(checks::sweep_across_days_removes_exactly_the_older_events);
            }
            #[test]
            fn sweeps_during_appends_keep_every_fresh_event() {
                let dir = tempfile::tempdir().unwrap();
                let store = ($open)(dir.path());
                checks::sweeps_during_appends_keep_every_fresh_event(std::sync::Arc::new(store));
            }
            #[test]
            fn concurrent_appends_are_all_kept() {
                let dir = tempfile::tempdir().unwrap();
                let store = ($open)(dir.path());
                checks::concurrent_appends_are_all_kept(std::sync::Arc::new(store));
            }
            #[test]
            fn events_survive_reopening() {
                checks::events_survive_reopening($open);
            }
            #[test]
            fn the_feed_follows_commits_and_never_reuses_a_number() {
                checks::the_feed_follows_commits_and_never_reuses_a_number($open);
            }
            #[test]
            fn state_is_committed_with_events_and_survives_reopening() {
                checks::state_is_committed_with_events_and_survives_reopening($open);
            }
        }
    };
}
