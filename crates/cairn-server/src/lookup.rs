//! LookupEvents: validated request in, one page of the event history out.

use cairn_store::{HistoryView, LookupQuery};
use cairn_wire::cloudtrail::{
    lookup_events_request_parameters, parse_lookup_events, EventOut, LookupEventsResponse,
};
use cairn_wire::AwsError;
use serde_json::{Map, Value};

use crate::AppState;

/// Returns the response body, and the request parameters to record (when the request was
/// well-formed enough to have any).
pub async fn lookup_events(
    state: &AppState,
    members: &Map<String, Value>,
) -> (Result<Vec<u8>, AwsError>, Option<Value>) {
    let request = match parse_lookup_events(members) {
        Ok(request) => request,
        Err(error) => return (Err(error), None),
    };
    let parameters = lookup_events_request_parameters(&request);
    let after = match &request.next_token {
        None => None,
        Some(token) => match state.next_tokens.open(token, &request) {
            Some(cursor) => Some(cursor),
            None => {
                let error = AwsError::new(
                    "InvalidNextTokenException",
                    "The NextToken is not valid, or it was issued for different lookup parameters.",
                );
                return (Err(error), Some(parameters));
            }
        },
    };
    // Expired events stay hidden even before the sweeper has removed them.
    let start_millis = match (request.start_millis, state.retention_cutoff_millis()) {
        (Some(start), Some(cutoff)) => Some(start.max(cutoff)),
        (start, cutoff) => start.or(cutoff),
    };
    let query = LookupQuery {
        attribute: request.attribute.clone(),
        start_millis,
        end_millis: request.end_millis,
        view: if request.insight {
            HistoryView::Insight
        } else {
            HistoryView::Management
        },
        limit: request.max_results,
        after,
    };
    let store = state.store.clone();
    let page = match tokio::task::spawn_blocking(move || store.lookup(&query)).await {
        Ok(Ok(page)) => page,
        Ok(Err(error)) => {
            tracing::error!(%error, "lookup failed");
            return (Err(AwsError::internal_failure()), Some(parameters));
        }
        Err(error) => {
            tracing::error!(%error, "lookup task failed");
            return (Err(AwsError::internal_failure()), Some(parameters));
        }
    };
    let response = LookupEventsResponse {
        events: page
            .events
            .iter()
            .map(|stored| EventOut::from(&stored.event))
            .collect(),
        next_token: page
            .next
            .map(|cursor| state.next_tokens.seal(cursor, &request)),
    };
    match serde_json::to_vec(&response) {
        Ok(body) => (Ok(body), Some(parameters)),
        Err(error) => {
            tracing::error!(%error, "cannot serialize a LookupEvents response");
            (Err(AwsError::internal_failure()), Some(parameters))
        }
    }
}
