//! What the server offers services' hooks and background work (`ServiceHost`): the clock,
//! recording service events durably, the upstream of a service asked as a given caller, and
//! reading back events already recorded.

use std::sync::Arc;

use cairn_capture::services::{
    AskingAs, BoxFuture, HostError, RecordedEvent, ServiceHost, Upstream,
};
use cairn_model::{LookupAttribute, LookupAttributeKey, StateChange};
use cairn_store::{HistoryView, LookupQuery, StoredEvent};
use serde_json::Value;

use crate::asking::Asker;
use crate::recorder::service_event;
use crate::AppState;

/// The server, as hooks see it.
pub(crate) struct Host(pub AppState);

impl ServiceHost for Host {
    fn now_millis(&self) -> i64 {
        self.0.clock.now_millis()
    }

    fn record(
        &self,
        events: Vec<RecordedEvent>,
        changes: Vec<StateChange>,
    ) -> BoxFuture<'_, Result<bool, HostError>> {
        let now = self.0.clock.now_millis();
        let calls = events
            .into_iter()
            .map(|recorded| {
                service_event(recorded.event, &recorded.account_id, &recorded.region, now)
            })
            .collect();
        Box::pin(async move {
            self.0
                .record_unless_refused(calls, changes)
                .await
                .map_err(|error| HostError(error.to_string()))
        })
    }

    fn state(
        &self,
        namespace: &'static str,
    ) -> BoxFuture<'_, Result<Vec<(String, String)>, HostError>> {
        let store = self.0.store.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.state(namespace))
                .await
                .map_err(|error| HostError(error.to_string()))?
                .map_err(|error| HostError(format!("cannot read the state: {error}")))
        })
    }

    fn upstream_as(&self, service_id: &str, caller: AskingAs) -> Option<Arc<dyn Upstream>> {
        let upstream = self.0.upstreams.for_service(Some(service_id), service_id)?;
        let asker = Asker::asking_as(&self.0, upstream, caller)?;
        Some(Arc::new(asker))
    }

    fn events_named(
        &self,
        event_source: &'static str,
        event_name: &'static str,
        since_millis: i64,
    ) -> BoxFuture<'_, Result<Vec<(i64, Value)>, HostError>> {
        let store = self.0.store.clone();
        Box::pin(async move {
            let found = tokio::task::spawn_blocking(move || {
                let mut query = LookupQuery::all(HistoryView::Management, 500);
                query.start_millis = Some(since_millis);
                query.attribute = Some(LookupAttribute {
                    key: LookupAttributeKey::EventName,
                    value: event_name.to_owned(),
                });
                let mut found: Vec<StoredEvent> = Vec::new();
                loop {
                    let page = store.lookup(&query)?;
                    found.extend(page.events);
                    match page.next {
                        Some(cursor) => query.after = Some(cursor),
                        None => return Ok::<_, cairn_store::StoreError>(found),
                    }
                }
            })
            .await
            .map_err(|error| HostError(error.to_string()))?
            .map_err(|error| HostError(format!("cannot read the history: {error}")))?;
            Ok(found
                .into_iter()
                .filter_map(|stored| {
                    let record: Value = serde_json::from_str(&stored.event.record_json).ok()?;
                    let source = record.get("eventSource").and_then(Value::as_str);
                    (source == Some(event_source))
                        .then_some((stored.event.event_time_millis, record))
                })
                .collect())
        })
    }
}
