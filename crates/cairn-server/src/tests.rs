//! In-process HTTP tests: the router driven with `tower::ServiceExt::oneshot`, signed the
//! way SigV4 clients sign. Real clients against the real binary live in tests/e2e.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use cairn_auth::{CredentialStore, DeclaredUser, SecretAccessKey};
use cairn_capture::services::{end_due_deletions, CapturedCall, ServiceEvent};
use cairn_model::{FixedClock, IndexedEvent, LookupAttributeKey, StateChange, TimeOrderedIds};
use cairn_store::{
    AppendOutcome, EventStore, HistoryView, LookupPage, LookupQuery, PendingAppend,
    SqliteEventStore, StoreError,
};
use cairn_wire::{sigv4, AwsError};

use crate::host::Host;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;

const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const NOW: i64 = 1_800_000_000_000;
const TARGET: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents";

/// A store whose appends can be made to fail, to prove calls fail closed.
struct FlakyStore {
    inner: SqliteEventStore,
    failing: AtomicBool,
}

impl EventStore for FlakyStore {
    fn append(&self, events: Vec<IndexedEvent>) -> Result<AppendOutcome, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::WriterStopped);
        }
        self.inner.append(events)
    }
    fn submit(&self, events: Vec<IndexedEvent>) -> Result<PendingAppend, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::WriterStopped);
        }
        self.inner.submit(events)
    }
    fn submit_with_state(
        &self,
        events: Vec<IndexedEvent>,
        changes: Vec<StateChange>,
    ) -> Result<PendingAppend, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::WriterStopped);
        }
        self.inner.submit_with_state(events, changes)
    }
    fn submit_imported(&self, events: Vec<IndexedEvent>) -> Result<PendingAppend, StoreError> {
        self.inner.submit_imported(events)
    }
    fn feed(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<cairn_store::StoredEvent>, StoreError> {
        self.inner.feed(after_seq, limit)
    }
    fn every_event(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<cairn_store::StoredEvent>, StoreError> {
        self.inner.every_event(after_seq, limit)
    }
    fn last_seq(&self) -> Result<i64, StoreError> {
        self.inner.last_seq()
    }
    fn state(&self, namespace: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.inner.state(namespace)
    }
    fn count_older_than(&self, cutoff: i64) -> Result<u64, StoreError> {
        self.inner.count_older_than(cutoff)
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
    fn lookup(&self, query: &LookupQuery) -> Result<LookupPage, StoreError> {
        self.inner.lookup(query)
    }
    fn sweep_older_than(&self, cutoff: i64) -> Result<u64, StoreError> {
        self.inner.sweep_older_than(cutoff)
    }
    fn count(&self) -> Result<u64, StoreError> {
        self.inner.count()
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<FlakyStore>,
    state: AppState,
}

fn harness(retention_days: u32) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let boot = cairn_auth::load_or_bootstrap(
        dir.path(),
        &[DeclaredUser {
            account_id: "111122223333".into(),
            user_name: "tester".into(),
            access_key_id: KEY.into(),
            secret_access_key: SecretAccessKey::new(SECRET),
        }],
        &[],
        &cairn_auth::ClientSettings::new("us-east-1", "http://localhost"),
        None,
    )
    .unwrap();
    let store = Arc::new(FlakyStore {
        inner: SqliteEventStore::open(dir.path()).unwrap(),
        failing: AtomicBool::new(false),
    });
    let state = AppState {
        store: store.clone(),
        credentials: Arc::new(CredentialStore::new(
            &boot.identities,
            cairn_auth::SessionKey::random(),
        )),
        clock: Arc::new(FixedClock::new(NOW)),
        ids: Arc::new(TimeOrderedIds),
        next_tokens: Arc::new(TokenKey::random()),
        settings: Arc::new(ServerSettings {
            default_region: "us-east-1".into(),
            retention: crate::Retention::new(retention_days),
            trusted_proxies: Vec::new(),
        }),
        upstreams: Arc::new(cairn_upstream::Upstreams::new(
            cairn_upstream::UpstreamRoutes::default(),
            std::time::Duration::from_secs(5),
        )),
        hooks: Arc::default(),
        refusals: Arc::default(),
        body_budget: Arc::default(),
        embedded_s3: None,
        trails: Arc::new(crate::TrailSupport::new(
            Arc::new(cairn_delivery::EmbeddedObjects {
                buckets: Arc::new(cairn_s3::BucketStore::open(dir.path()).unwrap()),
                clock: Arc::new(FixedClock::new(NOW)),
            }),
            None,
        )),
        metrics: None,
        transparency: None,
    };
    Harness {
        _dir: dir,
        store,
        state,
    }
}

fn signed(body: &[u8]) -> Request<Body> {
    signed_as(body, KEY, SECRET, None)
}

/// A LookupEvents request signed with `key`/`secret`, carrying `session_token` if given.
fn signed_as(body: &[u8], key: &str, secret: &str, session_token: Option<&str>) -> Request<Body> {
    let amz_date = chrono::DateTime::from_timestamp_millis(NOW)
        .unwrap()
        .format("%Y%m%dT%H%M%SZ")
        .to_string();
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("localhost"));
    headers.insert("x-amz-date", HeaderValue::from_str(&amz_date).unwrap());
    headers.insert("x-amz-target", HeaderValue::from_static(TARGET));
    if let Some(token) = session_token {
        headers.insert(
            "x-amz-security-token",
            HeaderValue::from_str(token).unwrap(),
        );
    }
    sigv4::sign_json_post(&mut headers, body, key, secret, "eu-west-1", "cloudtrail").unwrap();
    let mut request = Request::builder().method(Method::POST).uri("/");
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    request.body(Body::from(body.to_vec())).unwrap()
}

async fn call(state: &AppState, request: Request<Body>) -> (StatusCode, Value) {
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    assert!(response.headers().contains_key("x-amzn-RequestId"));
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn recorded(store: &FlakyStore) -> Vec<Value> {
    recorded_from(store, "cloudtrail.amazonaws.com")
}

/// The newest 50 events of `event_source`, as records.
fn recorded_from(store: &FlakyStore, event_source: &str) -> Vec<Value> {
    let mut query = LookupQuery::all(HistoryView::Management, 50);
    query.attribute = Some(cairn_model::LookupAttribute {
        key: LookupAttributeKey::EventSource,
        value: event_source.into(),
    });
    store
        .lookup(&query)
        .unwrap()
        .events
        .into_iter()
        .map(|stored| serde_json::from_str(&stored.event.record_json).unwrap())
        .collect()
}

#[tokio::test]
async fn a_served_call_is_recorded_with_the_callers_identity_and_region() {
    let harness = harness(90);
    let (status, body) = call(&harness.state, signed(b"{\"MaxResults\": 3}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["Events"], json!([]));
    let records = recorded(&harness.store);
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record["eventName"], "LookupEvents");
    assert_eq!(record["awsRegion"], "eu-west-1");
    assert_eq!(
        record["userIdentity"]["arn"],
        "arn:aws:iam::111122223333:user/tester"
    );
    assert_eq!(record["requestParameters"], json!({"maxResults": 3}));
    assert_eq!(record["eventTime"], "2027-01-15T08:00:00Z");
    assert!(record.get("errorCode").is_none());
}

#[tokio::test]
async fn a_call_that_cannot_be_recorded_fails_closed() {
    let harness = harness(90);
    harness.store.failing.store(true, Ordering::SeqCst);
    let (status, body) = call(&harness.state, signed(b"{}")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["__type"], "InternalFailure");
    assert!(
        !body["message"].as_str().unwrap().contains("writer"),
        "internal detail leaked: {body}"
    );
}

#[tokio::test]
async fn unsigned_and_oversized_calls_are_refused_and_recorded() {
    let harness = harness(90);
    let unsigned = Request::builder()
        .method(Method::POST)
        .uri("/")
        .header("x-amz-target", TARGET)
        .body(Body::from("{}"))
        .unwrap();
    let (status, body) = call(&harness.state, unsigned).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("MissingAuthenticationTokenException")
        )
    );
    let oversized = Request::builder()
        .method(Method::POST)
        .uri("/")
        .header("x-amz-target", TARGET)
        .body(Body::from(vec![b' '; MAX_REQUEST_BODY_BYTES + 1]))
        .unwrap();
    let (status, body) = call(&harness.state, oversized).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("RequestEntityTooLargeException")
        )
    );
    let codes: Vec<Value> = recorded(&harness.store)
        .iter()
        .map(|r| r["errorCode"].clone())
        .collect();
    assert_eq!(
        codes,
        [
            json!("RequestEntityTooLargeException"),
            json!("MissingAuthenticationTokenException")
        ]
    );
}

#[tokio::test]
async fn expired_events_are_hidden_before_the_sweep_and_removed_by_it() {
    let harness = harness(1);
    let old = cairn_store::conformance::sample_event(
        "old",
        NOW / 1000 - 2 * 86_400,
        "DescribeKey",
        "a",
        "AKIA1",
    );
    let fresh = cairn_store::conformance::sample_event(
        "fresh",
        NOW / 1000 - 3_600,
        "DescribeKey",
        "a",
        "AKIA1",
    );
    harness
        .store
        .submit(vec![old, fresh])
        .unwrap()
        .completion()
        .await
        .unwrap();
    let request = signed(
        br#"{"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":"DescribeKey"}]}"#,
    );
    let (_, body) = call(&harness.state, request).await;
    let ids: Vec<&str> = body["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["EventId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["fresh"]);
    let cutoff = harness.state.retention_cutoff_millis().unwrap();
    assert_eq!(harness.store.sweep_older_than(cutoff).unwrap(), 1);
}

/// A Secrets Manager call as the gateway records it: the rules' service events and state
/// changes go into one commit.
async fn record_secrets_manager_call(
    state: &AppState,
    operation: &str,
    secret: &str,
    answer: Value,
    at: i64,
) -> Result<(), AwsError> {
    let mut call = CapturedCall {
        service_id: "secretsmanager".into(),
        operation: operation.into(),
        region: "us-east-1".into(),
        account_id: "111122223333".into(),
        request_parameters: Some(json!({ "secretId": secret })),
        upstream_response: Some(answer),
        succeeded: true,
        ..CapturedCall::default()
    };
    cairn_capture::services::apply(&mut call);
    let events = call
        .service_events
        .iter()
        .cloned()
        .map(|event| recorder::service_event(event, "111122223333", "us-east-1", at))
        .collect();
    state.record_with_state(events, call.state_changes).await
}

#[tokio::test]
async fn a_recovery_window_that_ends_unrestored_records_end_secret_version_delete() {
    let mut harness = harness(0);
    let clock = Arc::new(FixedClock::new(NOW));
    harness.state.clock = clock.clone();
    let state = &harness.state;
    let window_end = NOW + 7 * 86_400_000;
    let kept = "arn:aws:secretsmanager:us-east-1:111122223333:secret:kept-AbCdEf";
    let gone = "arn:aws:secretsmanager:us-east-1:111122223333:secret:gone-AbCdEf";
    for secret in [kept, gone] {
        let answer = json!({ "arn": secret, "deletionDate": window_end as f64 / 1000.0 });
        record_secrets_manager_call(state, "DeleteSecret", secret, answer, NOW)
            .await
            .unwrap();
    }
    // An imported StartSecretVersionDelete (one AWS recorded, not Cairn) schedules nothing.
    let imported = "arn:aws:secretsmanager:us-east-1:111122223333:secret:imported-AbCdEf";
    state
        .record(recorder::service_event(
            ServiceEvent {
                event_source: "secretsmanager.amazonaws.com",
                event_name: "StartSecretVersionDelete",
                resource_arn: imported.to_owned(),
                details: Some(json!({ "deletionDate": cairn_model::format_event_time(NOW) })),
            },
            "111122223333",
            "us-east-1",
            NOW,
        ))
        .await
        .unwrap();
    clock.set(NOW + 86_400_000);
    record_secrets_manager_call(
        state,
        "RestoreSecret",
        kept,
        json!({ "arn": kept }),
        NOW + 86_400_000,
    )
    .await
    .unwrap();
    assert_eq!(
        end_due_deletions(&Host(state.clone())).await.unwrap(),
        0,
        "the window is still open"
    );
    clock.set(window_end + 1);
    assert_eq!(end_due_deletions(&Host(state.clone())).await.unwrap(), 1);
    assert_eq!(
        end_due_deletions(&Host(state.clone())).await.unwrap(),
        0,
        "ended once only"
    );
    let events = recorded_from(&harness.store, "secretsmanager.amazonaws.com");
    let ends: Vec<&Value> = events
        .iter()
        .filter(|event| event["eventName"] == "EndSecretVersionDelete")
        .collect();
    assert_eq!(
        ends.len(),
        1,
        "not for the restored secret, nor the imported one"
    );
    let end = ends[0];
    assert_eq!(end["additionalEventData"], json!({ "SecretId": gone }));
    assert_eq!(end["eventType"], "AwsServiceEvent");
    assert_eq!(
        end["userIdentity"],
        json!({"accountId": "111122223333", "invokedBy": "secretsmanager.amazonaws.com"})
    );
    assert_eq!(end["sourceIPAddress"], "secretsmanager.amazonaws.com");
    assert_eq!(end["requestParameters"], Value::Null);
    assert_eq!(end["managementEvent"], true);
    assert_eq!(end["recipientAccountId"], "111122223333");
}

#[tokio::test]
async fn session_credentials_work_until_they_expire() {
    let mut harness = harness(0);
    let clock = Arc::new(FixedClock::new(NOW));
    harness.state.clock = clock.clone();
    let state = &harness.state;
    let (user, _) = state.credentials.authenticate(KEY, None, NOW).unwrap();
    let session = state.credentials.session_token(&user, 900, NOW).unwrap();
    let request = || {
        signed_as(
            b"{}",
            &session.access_key_id,
            session.secret_access_key.expose(),
            Some(&session.session_token),
        )
    };
    let (status, _) = call(state, request()).await;
    assert_eq!(status, StatusCode::OK);
    // Still within the signature's 15 minutes, but past the session's end.
    clock.set(NOW + 900_000);
    let (status, body) = call(state, request()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["__type"], "ExpiredTokenException");
    assert_eq!(
        body["message"],
        "The security token included in the request is expired"
    );
    let refused = recorded(&harness.store)
        .into_iter()
        .find(|event| event["errorCode"] == "ExpiredTokenException")
        .expect("the refused call is recorded");
    assert_eq!(refused["userIdentity"]["type"], "Unknown");
    assert_eq!(
        refused["userIdentity"]["accessKeyId"],
        session.access_key_id.as_str()
    );
}

#[tokio::test]
async fn health_is_answered_in_front_of_the_edge_and_never_recorded() {
    let harness = harness(0);
    let request = Request::get("/_cairn/health").body(Body::empty()).unwrap();
    let response = router(harness.state.clone())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        harness.store.count().unwrap(),
        0,
        "health is not an AWS call"
    );
    // Any other path still reaches the edge, and is recorded there as refused.
    let request = Request::get("/_cairn/other").body(Body::empty()).unwrap();
    let response = router(harness.state.clone())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(harness.store.count().unwrap(), 1);
}

#[tokio::test]
async fn refusals_past_a_sources_rate_are_answered_but_not_recorded() {
    let harness = harness(0);
    let mut throttled = 0;
    for _ in 0..250 {
        let request = Request::post("/")
            .header("x-amz-target", TARGET)
            .body(Body::from("{}"))
            .unwrap();
        let (status, body) = call(&harness.state, request).await;
        if body["__type"] == "ThrottlingException" {
            assert_eq!(status, StatusCode::BAD_REQUEST);
            throttled += 1;
        }
    }
    // A burst of 200 is recorded, and a few more as the rate refills while the loop runs.
    assert!((30..=50).contains(&throttled), "{throttled} throttled");
    assert_eq!(harness.store.count().unwrap(), 250 - throttled);
}

/// A node's host whose state reads wait for the other node's, so that both nodes see a
/// recovery window open before either ends it.
struct RacingNode {
    host: Host,
    both_have_read: Arc<tokio::sync::Barrier>,
}

impl cairn_capture::services::ServiceHost for RacingNode {
    fn now_millis(&self) -> i64 {
        self.host.now_millis()
    }

    fn record(
        &self,
        events: Vec<cairn_capture::services::RecordedEvent>,
        changes: Vec<StateChange>,
    ) -> cairn_capture::services::BoxFuture<'_, Result<bool, cairn_capture::services::HostError>>
    {
        self.host.record(events, changes)
    }

    fn state(
        &self,
        namespace: &'static str,
    ) -> cairn_capture::services::BoxFuture<
        '_,
        Result<Vec<(String, String)>, cairn_capture::services::HostError>,
    > {
        Box::pin(async move {
            let read = self.host.state(namespace).await;
            self.both_have_read.wait().await;
            read
        })
    }

    fn upstream_as(
        &self,
        service_id: &str,
        caller: cairn_capture::services::AskingAs,
    ) -> Option<Arc<dyn cairn_capture::services::Upstream>> {
        self.host.upstream_as(service_id, caller)
    }

    fn events_named(
        &self,
        event_source: &'static str,
        event_name: &'static str,
        since_millis: i64,
    ) -> cairn_capture::services::BoxFuture<
        '_,
        Result<Vec<(i64, Value)>, cairn_capture::services::HostError>,
    > {
        self.host
            .events_named(event_source, event_name, since_millis)
    }
}

#[tokio::test]
async fn two_nodes_that_both_see_a_window_end_record_its_end_once() {
    let mut harness = harness(0);
    let clock = Arc::new(FixedClock::new(NOW));
    harness.state.clock = clock.clone();
    let secret = "arn:aws:secretsmanager:us-east-1:111122223333:secret:raced-AbCdEf";
    let answer = json!({ "arn": secret, "deletionDate": (NOW + 1_000) as f64 / 1000.0 });
    record_secrets_manager_call(&harness.state, "DeleteSecret", secret, answer, NOW)
        .await
        .unwrap();
    clock.set(NOW + 2_000);
    let both_have_read = Arc::new(tokio::sync::Barrier::new(2));
    let node = || RacingNode {
        host: Host(harness.state.clone()),
        both_have_read: Arc::clone(&both_have_read),
    };
    let (first, second) = (node(), node());
    let (first, second) = tokio::join!(end_due_deletions(&first), end_due_deletions(&second));
    assert_eq!(
        first.unwrap() + second.unwrap(),
        1,
        "one node ends the window"
    );
    let ends = recorded_from(&harness.store, "secretsmanager.amazonaws.com")
        .into_iter()
        .filter(|event| event["eventName"] == "EndSecretVersionDelete")
        .count();
    assert_eq!(ends, 1, "its end is recorded once");
}
