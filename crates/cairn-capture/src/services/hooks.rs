//! Hooks: what a service needs beyond pure rules when its records depend on the upstream's
//! state. A hook may ask the upstream before the call is forwarded and after it is answered
//! (always as the caller, through [`Upstream`]), act once the call is recorded, and run work
//! in the background (through [`ServiceHost`]). The server implements both traits; nothing
//! here opens a connection or touches storage itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cairn_model::StateChange;
use serde_json::Value;

use super::{CapturedCall, ServiceEvent};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Whom questions are asked as: what the caller's signature named. It outlives the call, and
/// is kept on disk where a watch must go on after a restart. It holds no secret (the server
/// looks the secret up for every question, so credentials that expire or are removed stop
/// being used), but a session token is a credential's half, so it has no `Debug`.
#[derive(Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct AskingAs {
    pub region: String,
    pub access_key_id: String,
    pub session_token: Option<String>,
    /// The `Host` the caller signed for, which the upstream sees again.
    pub host: String,
}

/// The upstream a call went to, asked as the call's caller.
pub trait Upstream: Send + Sync {
    /// Asks a JSON-protocol operation (`target`, as in `X-Amz-Target`); `None` when the
    /// upstream did not answer with success and JSON.
    fn ask_json<'a>(
        &'a self,
        signing_name: &'a str,
        target: &'static str,
        content_type: &'static str,
        input: &'a Value,
    ) -> BoxFuture<'a, Option<Value>>;

    /// Whom the questions are asked as.
    fn caller(&self) -> &AskingAs;

    /// Which upstream this is, so that what is learned of one is never taken for another's.
    fn upstream_id(&self) -> String;

    /// How long the upstream is given to answer.
    fn timeout(&self) -> Duration;
}

/// A service event to record, in the account and region it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    pub event: ServiceEvent,
    pub account_id: String,
    pub region: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HostError(pub String);

/// What the server offers hooks and background work.
pub trait ServiceHost: Send + Sync {
    fn now_millis(&self) -> i64;

    /// Records the events, with the state changes they bring, in one commit; returns once
    /// it is durable. `Ok(false)`, with nothing recorded, when an entry the changes
    /// require (`StateChange::require`) no longer holds.
    fn record(
        &self,
        events: Vec<RecordedEvent>,
        changes: Vec<StateChange>,
    ) -> BoxFuture<'_, Result<bool, HostError>>;

    /// Every entry of a namespace of the state kept beside the events.
    fn state(
        &self,
        namespace: &'static str,
    ) -> BoxFuture<'_, Result<Vec<(String, String)>, HostError>>;

    /// The upstream of `service_id`, asked as `caller`; `None` when there is none.
    fn upstream_as(&self, service_id: &str, caller: AskingAs) -> Option<Arc<dyn Upstream>>;

    /// (eventTime in milliseconds, record) of every event of `event_source` named
    /// `event_name` recorded at or after `since_millis`.
    fn events_named(
        &self,
        event_source: &'static str,
        event_name: &'static str,
        since_millis: i64,
    ) -> BoxFuture<'_, Result<Vec<(i64, Value)>, HostError>>;
}

/// A service's hooks.
pub trait ServiceHooks: Send + Sync {
    /// The hook for one call of a verified caller, or `None` when this call needs nothing
    /// from the upstream. `body` is the request body as sent.
    fn begin(&self, call: &CapturedCall, body: &[u8]) -> Option<Box<dyn CallHook>>;

    /// Work that runs beside the server for as long as it runs.
    fn background(&self, _host: Arc<dyn ServiceHost>) -> Vec<BoxFuture<'static, ()>> {
        Vec::new()
    }
}

/// One call's hook, from before it is forwarded until it is answered.
pub trait CallHook: Send {
    /// Before the call is forwarded. May change what the record says of the request.
    fn before<'a>(
        &'a mut self,
        _call: &'a mut CapturedCall,
        _upstream: &'a dyn Upstream,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// Once the upstream has answered (`call.succeeded` and the parsed answer are set) and
    /// before the service's rules run: what the hook saw goes into `call.observed`.
    fn after<'a>(
        &'a mut self,
        _call: &'a mut CapturedCall,
        _answer: &'a [u8],
        _upstream: &'a dyn Upstream,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// Once the call and its service events are durable, before the call is answered.
    fn recorded(
        self: Box<Self>,
        _call: &CapturedCall,
        _upstream: Arc<dyn Upstream>,
        _host: Arc<dyn ServiceHost>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// The hooks of every service that has them.
#[derive(Default)]
pub struct ServiceHooksSet {
    hooks: Vec<(&'static str, Arc<dyn ServiceHooks>)>,
}

impl ServiceHooksSet {
    pub fn new(hooks: Vec<(&'static str, Arc<dyn ServiceHooks>)>) -> Self {
        Self { hooks }
    }

    pub fn for_service(&self, service_id: &str) -> Option<&dyn ServiceHooks> {
        self.hooks
            .iter()
            .find(|(id, _)| *id == service_id)
            .map(|(_, hooks)| hooks.as_ref())
    }

    /// Every service's background work.
    pub fn background(&self, host: Arc<dyn ServiceHost>) -> Vec<BoxFuture<'static, ()>> {
        self.hooks
            .iter()
            .flat_map(|(_, hooks)| hooks.background(Arc::clone(&host)))
            .collect()
    }
}
