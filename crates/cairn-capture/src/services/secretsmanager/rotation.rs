//! What a Secrets Manager call does to a secret's rotation, seen from the gateway.
//!
//! A rotation's state lives in the upstream (which version is labelled AWSPENDING), not in
//! the calls, so around the calls that can change it the gateway asks the upstream
//! (`DescribeSecret`, signed with the caller's own credentials, so an upstream that checks
//! signatures and permissions sees the caller):
//!
//! - **RotationAbandoned**: a version created by hand while another is labelled AWSPENDING.
//!   `PutSecretValue` not labelled AWSPENDING (the rotation's own `createSecret` step labels
//!   its version so) and `UpdateSecret` with a new value create versions by hand. Asked
//!   before the call.
//! - **RotationFailed**: a `RotateSecret` that fails after labelling a new version
//!   AWSPENDING (the rotation function could not be found or failed a step) began a rotation
//!   that did not finish. Asked before the call and again after.
//! - **RotationSucceeded / RotationFailed later**: a `RotateSecret` answered while its new
//!   version is still AWSPENDING (AWS answers at once and runs the rotation function
//!   afterwards) is watched: the gateway asks again every `poll_every` until the version
//!   becomes AWSCURRENT (succeeded) or `give_up_after` passes with it still pending
//!   (failed: a rotation function runs at most four 15-minute steps). A version that stops
//!   being pending without becoming current (a cancelled or abandoned rotation) ends the
//!   watch with no event; so does a watch whose questions all went unanswered. Watches are
//!   written down (`rotation_book`) before the RotateSecret is answered and resumed when
//!   Cairn starts again, so a restart does not lose a rotation's end; on a store several
//!   nodes share, any node takes up a watch whose node stopped, and the end is recorded once.
//!
//! If a question cannot be answered (the upstream fails), nothing is emitted: an audit trail
//! must not claim what it did not see.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::rotation_book::{RotationBook, WatchedRotation};
use super::{
    RotationSeen, ROTATION_FAILED, ROTATION_STARTED, ROTATION_SUCCEEDED, SECRETS_MANAGER_SOURCE,
};
use crate::services::hooks::{BoxFuture, CallHook, RecordedEvent, ServiceHost, Upstream};
use crate::services::{CapturedCall, ServiceEvent};

const PENDING_STAGE: &str = "AWSPENDING";
const CURRENT_STAGE: &str = "AWSCURRENT";

/// A call whose effect on a rotation the gateway must ask the upstream about.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RotationWatch {
    /// A call that creates a secret version by hand.
    ManualVersion {
        secret_id: String,
        /// The version the call creates, when the caller named it: a pending version with
        /// this ID is the one being written, not one being abandoned.
        version_id: Option<String>,
    },
    /// A RotateSecret call.
    Rotation { secret_id: String },
}

impl RotationWatch {
    /// Reads the request body of `operation` for a call that bears on a rotation.
    pub(crate) fn of(operation: &str, body: &[u8]) -> Option<Self> {
        let input: Value = serde_json::from_slice(body).ok()?;
        let secret_id = input.get("SecretId")?.as_str()?.to_owned();
        let creates_value =
            input.get("SecretString").is_some() || input.get("SecretBinary").is_some();
        let labelled_pending = input
            .get("VersionStages")
            .and_then(Value::as_array)
            .is_some_and(|stages| stages.iter().any(|stage| stage == PENDING_STAGE));
        let manual = match operation {
            "RotateSecret" => return Some(Self::Rotation { secret_id }),
            "PutSecretValue" => !labelled_pending,
            "UpdateSecret" => creates_value,
            _ => false,
        };
        manual.then(|| Self::ManualVersion {
            secret_id,
            version_id: input
                .get("ClientRequestToken")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    fn secret_id(&self) -> &str {
        match self {
            Self::ManualVersion { secret_id, .. } | Self::Rotation { secret_id } => secret_id,
        }
    }
}

/// The secret's `DescribeSecret` answer; `None` when the upstream did not give one.
async fn describe(upstream: &dyn Upstream, secret_id: &str) -> Option<Value> {
    let input = serde_json::json!({ "SecretId": secret_id });
    upstream
        .ask_json(
            "secretsmanager",
            "secretsmanager.DescribeSecret",
            "application/x-amz-json-1.1",
            &input,
        )
        .await
}

/// One call that bears on a rotation, from before it is forwarded until it is answered.
pub(crate) struct RotationHook {
    watches: Arc<RotationWatches>,
    watch: RotationWatch,
    /// The secret as it was before the call.
    before: Option<Value>,
    seen: RotationSeen,
}

impl RotationHook {
    pub(crate) fn begin(
        watches: &Arc<RotationWatches>,
        operation: &str,
        body: &[u8],
    ) -> Option<Self> {
        Some(Self {
            watches: Arc::clone(watches),
            watch: RotationWatch::of(operation, body)?,
            before: None,
            seen: RotationSeen::Nothing,
        })
    }
}

impl CallHook for RotationHook {
    fn before<'a>(
        &'a mut self,
        _call: &'a mut CapturedCall,
        upstream: &'a dyn Upstream,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.before = describe(upstream, self.watch.secret_id()).await;
        })
    }

    fn after<'a>(
        &'a mut self,
        call: &'a mut CapturedCall,
        _answer: &'a [u8],
        upstream: &'a dyn Upstream,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.seen = seen(upstream, &self.watch, self.before.as_ref(), call.succeeded).await;
            call.observed = Some(Arc::new(self.seen.clone()));
        })
    }

    fn recorded(
        self: Box<Self>,
        call: &CapturedCall,
        upstream: Arc<dyn Upstream>,
        host: Arc<dyn ServiceHost>,
    ) -> BoxFuture<'static, ()> {
        let started = call
            .service_events
            .iter()
            .any(|event| event.event_name == ROTATION_STARTED);
        Box::pin(async move {
            if let (
                RotationSeen::StartedStillPending {
                    secret_arn,
                    version_id,
                },
                true,
            ) = (self.seen, started)
            {
                watch_rotation(self.watches, upstream, host, secret_arn, version_id).await;
            }
        })
    }
}

/// What `watch`'s call did to the rotation, given the secret as it was before and whether
/// the call succeeded.
async fn seen(
    upstream: &dyn Upstream,
    watch: &RotationWatch,
    before: Option<&Value>,
    succeeded: bool,
) -> RotationSeen {
    let Some(before) = before else {
        return RotationSeen::Nothing;
    };
    match watch {
        RotationWatch::ManualVersion { version_id, .. } => {
            if pending_versions(before).any(|pending| Some(pending) != version_id.as_deref()) {
                RotationSeen::PendingBeforeManualVersion
            } else {
                RotationSeen::Nothing
            }
        }
        RotationWatch::Rotation { secret_id } => {
            let Some(after) = describe(upstream, secret_id).await else {
                return RotationSeen::Nothing;
            };
            rotation_left_pending(before, &after, succeeded)
        }
    }
}

/// The versions labelled AWSPENDING and not AWSCURRENT in a DescribeSecret answer.
fn pending_versions(described: &Value) -> impl Iterator<Item = &str> {
    described
        .get("VersionIdsToStages")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, stages)| {
            let has = |label: &str| {
                stages
                    .as_array()
                    .is_some_and(|stages| stages.iter().any(|stage| stage == label))
            };
            has(PENDING_STAGE) && !has(CURRENT_STAGE)
        })
        .map(|(version, _)| version.as_str())
}

/// Whether a RotateSecret left a version pending that was not pending before it: the
/// rotation began and had not finished when the call was answered. A failed call's rotation
/// never will; a successful call's is still running.
fn rotation_left_pending(before: &Value, after: &Value, succeeded: bool) -> RotationSeen {
    let was_pending: Vec<&str> = pending_versions(before).collect();
    let began = pending_versions(after).find(|version| !was_pending.contains(version));
    let (Some(arn), Some(version)) = (after.get("ARN").and_then(Value::as_str), began) else {
        return RotationSeen::Nothing;
    };
    let secret_arn = arn.to_owned();
    if succeeded {
        RotationSeen::StartedStillPending {
            secret_arn,
            version_id: version.to_owned(),
        }
    } else {
        RotationSeen::StartedAndFailed { secret_arn }
    }
}

/// How often a rotation the upstream finishes after answering is looked at, and how long
/// until one still pending is recorded as failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationSettings {
    pub poll_every: Duration,
    pub give_up_after: Duration,
}

impl Default for RotationSettings {
    fn default() -> Self {
        Self {
            poll_every: Duration::from_secs(15),
            // A rotation function runs four steps of at most 15 minutes each.
            give_up_after: Duration::from_secs(3600),
        }
    }
}

/// How rotations an upstream finishes after answering are watched, how many at once, and
/// where they are written down.
pub(crate) struct RotationWatches {
    settings: RotationSettings,
    slots: Arc<Semaphore>,
    book: Arc<RotationBook>,
    /// The watches this node runs now, by key: a watch taken up again is not run twice.
    watching: Mutex<HashSet<String>>,
}

/// How often a node sharing its store looks for watches no node runs (their node stopped).
const ADOPT_EVERY: Duration = Duration::from_secs(30);

/// More rotations than this running at once go unwatched (and logged as such): each watch
/// holds a task and the caller's identity until its rotation ends.
const MAX_WATCHED_ROTATIONS: usize = 1000;

impl RotationWatches {
    /// Watches kept in `book`.
    pub(crate) fn new(settings: RotationSettings, book: RotationBook) -> Self {
        Self {
            settings,
            slots: Arc::new(Semaphore::new(MAX_WATCHED_ROTATIONS)),
            book: Arc::new(book),
            watching: Mutex::new(HashSet::new()),
        }
    }
}

/// Watches, on its own task, the rotation of `version_id` that a RotateSecret call began and
/// its upstream has yet to finish, and records how it ends. Returns once the watch is written
/// down, so that the call is answered only then.
async fn watch_rotation(
    watches: Arc<RotationWatches>,
    upstream: Arc<dyn Upstream>,
    host: Arc<dyn ServiceHost>,
    secret_arn: String,
    version_id: String,
) {
    let Ok(slot) = Arc::clone(&watches.slots).try_acquire_owned() else {
        tracing::warn!(%secret_arn, "too many rotations watched at once; this one's end will not be recorded");
        return;
    };
    let started_millis = host.now_millis();
    let give_up_after =
        i64::try_from(watches.settings.give_up_after.as_millis()).unwrap_or(i64::MAX);
    let rotation = WatchedRotation {
        secret_arn,
        version_id,
        started_millis,
        give_up_at_millis: started_millis.saturating_add(give_up_after),
        caller: upstream.caller().clone(),
    };
    if let Err(error) = watches.book.add(&*host, rotation.clone()).await {
        tracing::error!(%error, secret_arn = %rotation.secret_arn, "cannot write a rotation watch down; a restart will forget it");
    }
    if watches.begin_watching(&rotation) {
        tokio::spawn(watch(watches, upstream, host, rotation, slot));
    }
}

impl RotationWatches {
    /// Marks `rotation` as run by this node; `false` if it already was.
    fn begin_watching(&self, rotation: &WatchedRotation) -> bool {
        self.watching
            .lock()
            .map(|mut watching| watching.insert(rotation.key()))
            .unwrap_or(false)
    }

    fn end_watching(&self, rotation: &WatchedRotation) {
        if let Ok(mut watching) = self.watching.lock() {
            watching.remove(&rotation.key());
        }
    }
}

/// Takes up again the watches a previous run wrote down and did not end; on a shared store,
/// also (every [`ADOPT_EVERY`]) those whose node stopped before their end.
pub(crate) async fn resume_watches(watches: Arc<RotationWatches>, host: Arc<dyn ServiceHost>) {
    loop {
        take_up_watches(&watches, &host).await;
        if !watches.book.is_shared() {
            return;
        }
        tokio::time::sleep(ADOPT_EVERY).await;
    }
}

async fn take_up_watches(watches: &Arc<RotationWatches>, host: &Arc<dyn ServiceHost>) {
    let rotations = match watches.book.rotations(&**host).await {
        Ok(rotations) => rotations,
        Err(error) => {
            tracing::error!(%error, "cannot read the rotation watches; they are left for later");
            return;
        }
    };
    let running = watches
        .watching
        .lock()
        .map(|watching| watching.clone())
        .unwrap_or_default();
    let rotations: Vec<WatchedRotation> = rotations
        .into_iter()
        .filter(|rotation| !running.contains(&rotation.key()))
        .collect();
    let Some(earliest) = rotations
        .iter()
        .map(|rotation| rotation.started_millis)
        .min()
    else {
        return;
    };
    // A previous run may have recorded an end and stopped before striking its watch out:
    // the ends recorded since the earliest watch began, read once for all of them.
    let Some(ends) = ends_recorded_since(&**host, earliest).await else {
        tracing::error!("cannot read the history; rotation watches are left for the next start");
        return;
    };
    for rotation in rotations {
        let (secret_arn, version_id) = (&rotation.secret_arn, &rotation.version_id);
        let began_second = second_of(rotation.started_millis);
        if ends
            .iter()
            .any(|(secret, time)| secret == secret_arn && *time >= began_second)
        {
            strike_out(watches, &**host, &rotation, None).await;
            continue;
        }
        let Some(upstream) = host.upstream_as("secretsmanager", rotation.caller.clone()) else {
            tracing::warn!(%secret_arn, "no Secrets Manager upstream to ask; the rotation watch is left for the next start");
            continue;
        };
        let Ok(slot) = Arc::clone(&watches.slots).try_acquire_owned() else {
            tracing::warn!(%secret_arn, "too many rotations watched at once; the rotation watch is left for the next start");
            continue;
        };
        if !watches.begin_watching(&rotation) {
            continue;
        }
        tracing::info!(%secret_arn, %version_id, "resumed watching a rotation");
        tokio::spawn(watch(
            Arc::clone(watches),
            upstream,
            Arc::clone(host),
            rotation,
            slot,
        ));
    }
}

/// (secret ARN, eventTime) of every RotationSucceeded and RotationFailed recorded since
/// `since_millis`; `None` when the history cannot be read.
async fn ends_recorded_since(
    host: &dyn ServiceHost,
    since_millis: i64,
) -> Option<Vec<(String, i64)>> {
    let mut ends = Vec::new();
    for name in [ROTATION_SUCCEEDED, ROTATION_FAILED] {
        let found = super::deletions::secret_events(host, name, second_of(since_millis))
            .await
            .ok()?;
        ends.extend(found);
    }
    Some(ends)
}

/// eventTime has whole seconds: an end recorded within the second a watch began reads as
/// earlier than the watch.
fn second_of(millis: i64) -> i64 {
    millis - millis.rem_euclid(1000)
}

/// Records `end` (if any) and strikes the watch out, in one commit on a shared store.
async fn strike_out(
    watches: &RotationWatches,
    host: &dyn ServiceHost,
    rotation: &WatchedRotation,
    end: Option<RecordedEvent>,
) {
    let secret_arn = &rotation.secret_arn;
    let event_name = end.as_ref().map(|end| end.event.event_name);
    match watches.book.end(host, rotation, end).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(%secret_arn, "another node recorded this rotation's end first")
        }
        // Left written down: the next start (or, on a shared store, another node) asks again.
        Err(error) => {
            tracing::error!(%error, %secret_arn, ?event_name, "cannot record a rotation's end")
        }
    }
    watches.end_watching(rotation);
}

/// Where a watched rotation's version stands in a DescribeSecret answer.
#[derive(Debug, PartialEq, Eq)]
enum VersionProgress {
    Pending,
    Current,
    /// Neither: the rotation was cancelled or abandoned, or the version removed.
    Dropped,
}

fn version_progress(described: &Value, version_id: &str) -> VersionProgress {
    let stages = described
        .get("VersionIdsToStages")
        .and_then(|versions| versions.get(version_id))
        .and_then(Value::as_array);
    let has = |label: &str| stages.is_some_and(|stages| stages.iter().any(|s| s == label));
    if has(CURRENT_STAGE) {
        VersionProgress::Current
    } else if has(PENDING_STAGE) {
        VersionProgress::Pending
    } else {
        VersionProgress::Dropped
    }
}

async fn watch(
    watches: Arc<RotationWatches>,
    upstream: Arc<dyn Upstream>,
    host: Arc<dyn ServiceHost>,
    rotation: WatchedRotation,
    _slot: OwnedSemaphorePermit,
) {
    let (secret_arn, version_id) = (&rotation.secret_arn, &rotation.version_id);
    let mut seen_pending = false;
    let ended = loop {
        tokio::time::sleep(watches.settings.poll_every).await;
        if let Some(described) = describe(&*upstream, secret_arn).await {
            match version_progress(&described, version_id) {
                VersionProgress::Pending => seen_pending = true,
                VersionProgress::Current => break Some(ROTATION_SUCCEEDED),
                VersionProgress::Dropped => break None,
            }
        }
        if host.now_millis() >= rotation.give_up_at_millis {
            break seen_pending.then_some(ROTATION_FAILED);
        }
    };
    let end = ended.map(|event_name| RecordedEvent {
        event: ServiceEvent {
            event_source: SECRETS_MANAGER_SOURCE,
            event_name,
            resource_arn: secret_arn.clone(),
            details: None,
        },
        account_id: secret_arn.split(':').nth(4).unwrap_or_default().to_owned(),
        region: upstream.caller().region.clone(),
    });
    if end.is_none() {
        tracing::info!(%secret_arn, %version_id, "stopped watching a rotation whose end was not seen");
    }
    strike_out(&watches, &*host, &rotation, end).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn manual_versions_are_told_from_the_rotations_own() {
        assert_eq!(
            RotationWatch::of(
                "PutSecretValue",
                &body(json!({"SecretId": "db", "SecretString": "x", "ClientRequestToken": "v9"}))
            ),
            Some(RotationWatch::ManualVersion {
                secret_id: "db".into(),
                version_id: Some("v9".into())
            })
        );
        let rotation_step =
            json!({"SecretId": "db", "SecretString": "x", "VersionStages": ["AWSPENDING"]});
        assert_eq!(
            RotationWatch::of("PutSecretValue", &body(rotation_step)),
            None
        );
        assert_eq!(
            RotationWatch::of(
                "UpdateSecret",
                &body(json!({"SecretId": "db", "Description": "d"}))
            ),
            None,
            "an update without a value creates no version"
        );
        assert!(RotationWatch::of(
            "UpdateSecret",
            &body(json!({"SecretId": "db", "SecretBinary": "eA=="}))
        )
        .is_some());
        assert_eq!(
            RotationWatch::of("GetSecretValue", &body(json!({"SecretId": "db"}))),
            None
        );
        assert_eq!(
            RotationWatch::of("RotateSecret", &body(json!({"SecretId": "db"}))),
            Some(RotationWatch::Rotation {
                secret_id: "db".into()
            })
        );
        assert_eq!(RotationWatch::of("PutSecretValue", b"not json"), None);
    }

    #[test]
    fn only_a_version_pending_and_not_current_counts_as_pending() {
        let described = json!({"VersionIdsToStages": {
            "v1": ["AWSCURRENT"], "v2": ["AWSPENDING"], "v3": ["AWSCURRENT", "AWSPENDING"]
        }});
        assert_eq!(pending_versions(&described).collect::<Vec<_>>(), ["v2"]);
        let settled = json!({"VersionIdsToStages": {"v1": ["AWSCURRENT"], "v0": ["AWSPREVIOUS"]}});
        assert_eq!(pending_versions(&settled).count(), 0);
        assert_eq!(pending_versions(&json!({})).count(), 0);
    }

    #[test]
    fn a_failed_rotation_began_only_if_it_left_a_new_version_pending() {
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf";
        let described = |stages: Value| json!({"ARN": arn, "VersionIdsToStages": stages});
        let before = described(json!({"v1": ["AWSCURRENT"]}));
        let began = described(json!({"v1": ["AWSCURRENT"], "v2": ["AWSPENDING"]}));
        assert_eq!(
            rotation_left_pending(&before, &began, false),
            RotationSeen::StartedAndFailed {
                secret_arn: arn.into()
            }
        );
        assert_eq!(
            rotation_left_pending(&before, &before, false),
            RotationSeen::Nothing,
            "refused before it labelled anything"
        );
        assert_eq!(
            rotation_left_pending(&began, &began, false),
            RotationSeen::Nothing,
            "the version was already pending: an earlier rotation's, not this call's"
        );
    }

    #[test]
    fn a_rotation_answered_while_pending_is_still_running_until_its_version_is_current() {
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf";
        let described = |stages: Value| json!({"ARN": arn, "VersionIdsToStages": stages});
        let before = described(json!({"v1": ["AWSCURRENT"]}));
        let running = described(json!({"v1": ["AWSCURRENT"], "v2": ["AWSPENDING"]}));
        assert_eq!(
            rotation_left_pending(&before, &running, true),
            RotationSeen::StartedStillPending {
                secret_arn: arn.into(),
                version_id: "v2".into()
            }
        );
        let finished_at_once = described(json!({"v1": ["AWSPREVIOUS"], "v2": ["AWSCURRENT"]}));
        assert_eq!(
            rotation_left_pending(&before, &finished_at_once, true),
            RotationSeen::Nothing,
            "an upstream that answers when the rotation is done leaves nothing to watch"
        );
        assert_eq!(version_progress(&running, "v2"), VersionProgress::Pending);
        let finished =
            described(json!({"v1": ["AWSPREVIOUS"], "v2": ["AWSCURRENT", "AWSPENDING"]}));
        assert_eq!(version_progress(&finished, "v2"), VersionProgress::Current);
        assert_eq!(
            version_progress(&finished_at_once, "v2"),
            VersionProgress::Current
        );
        assert_eq!(version_progress(&before, "v2"), VersionProgress::Dropped);
        assert_eq!(version_progress(&json!({}), "v2"), VersionProgress::Dropped);
    }
}
