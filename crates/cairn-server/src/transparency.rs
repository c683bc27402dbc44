//! `/_cairn/transparency/…`: the transparency log for anyone who keeps watch, never recorded
//! (it changes nothing): the latest signed checkpoint, the key that verifies it, an event's
//! inclusion proof, consistency proofs between checkpoints, and the C2SP tiles of stored
//! hashes. Hashes are public; an event's record is not: a proof carries the record only for
//! a caller whose SigV4 signature verifies, as LookupEvents would show it them. Proofs are
//! computed off the async workers, a few at a time: unsigned callers cannot take the
//! blocking threads that the store's work needs.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use cairn_wire::sigv4::{self, SignedRequest};
use chrono::{TimeZone, Utc};
use http::{header, HeaderMap, Method, StatusCode, Uri};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::AppState;

/// The longest event ID looked up: CloudTrail's are 36 characters.
const MAX_EVENT_ID: usize = 256;

fn answer(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn refused(status: StatusCode, message: &str) -> Response {
    answer(
        status,
        "application/json",
        serde_json::json!({ "message": message }).to_string(),
    )
}

/// Proofs, consistency paths and tiles computed at once; more wait for a permit, and one
/// that waits too long is told to come back.
const WORKING_AT_ONCE: usize = 4;
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
static WORKING: Semaphore = Semaphore::const_new(WORKING_AT_ONCE);

async fn permit() -> Result<SemaphorePermit<'static>, Response> {
    match tokio::time::timeout(MAX_WAIT, WORKING.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "the transparency log is busy; try again",
        )),
    }
}

/// Whether the request carries a SigV4 signature (header or presigned) by a key Cairn
/// knows, valid now.
fn signed_by_known_key(state: &AppState, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
    let now_millis = state.clock.now_millis();
    let Some(now) = Utc.timestamp_millis_opt(now_millis).single() else {
        return false;
    };
    let session_token = headers
        .get("x-amz-security-token")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .find(|(name, _)| name == "X-Amz-Security-Token")
                .map(|(_, value)| value.into_owned())
        });
    let request = SignedRequest {
        method,
        raw_path: uri.path(),
        raw_query: uri.query().unwrap_or(""),
        headers,
        body: b"",
    };
    sigv4::verify(&request, now, |access_key_id| {
        state
            .credentials
            .authenticate(access_key_id, session_token.as_deref(), now_millis)
            .ok()
            .map(|(_, secret)| secret.expose().to_owned())
    })
    .is_ok()
}

fn off() -> Response {
    refused(StatusCode::NOT_FOUND, "the transparency log is off")
}

pub async fn checkpoint(State(state): State<AppState>) -> Response {
    match &state.transparency {
        Some(log) => answer(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            log.checkpoint(),
        ),
        None => off(),
    }
}

pub async fn key(State(state): State<AppState>) -> Response {
    match &state.transparency {
        Some(log) => answer(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            format!("{}\n", log.verifier_key()),
        ),
        None => off(),
    }
}

pub async fn proof(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(log) = state.transparency.clone() else {
        return off();
    };
    let shows_record = signed_by_known_key(&state, &method, &uri, &headers);
    let Some(event_id) = query.get("event-id").filter(|id| !id.is_empty()) else {
        return refused(StatusCode::BAD_REQUEST, "event-id is required");
    };
    if event_id.len() > MAX_EVENT_ID {
        return refused(StatusCode::BAD_REQUEST, "event-id is too long");
    }
    let event_id = event_id.clone();
    let permit = match permit().await {
        Ok(permit) => permit,
        Err(busy) => return busy,
    };
    // The permit goes with the work: a caller who hangs up does not free it early.
    let found = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        log.prove(&event_id)
    })
    .await;
    match found {
        Ok(Ok(Some(mut proof))) => {
            if !shows_record {
                proof.record = None;
            }
            answer(
                StatusCode::OK,
                "application/json",
                serde_json::to_string(&proof).unwrap_or_default(),
            )
        }
        Ok(Ok(None)) => refused(
            StatusCode::NOT_FOUND,
            "no event with this ID is in the transparency log (yet)",
        ),
        Ok(Err(error)) => {
            tracing::warn!(%error, "transparency proof failed");
            refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the proof could not be made",
            )
        }
        Err(_) => refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the proof could not be made",
        ),
    }
}

pub async fn consistency(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(log) = state.transparency.clone() else {
        return off();
    };
    let size = |name: &str| query.get(name).and_then(|text| text.parse::<u64>().ok());
    let (Some(from), Some(to)) = (size("from"), size("to")) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "from and to (tree sizes) are required",
        );
    };
    if from == 0 || from > to {
        return refused(StatusCode::BAD_REQUEST, "0 < from <= to is required");
    }
    let permit = match permit().await {
        Ok(permit) => permit,
        Err(busy) => return busy,
    };
    match tokio::task::spawn_blocking(move || {
        let _permit = permit;
        log.consistency(from, to)
    })
    .await
    {
        Ok(Ok(path)) => answer(
            StatusCode::OK,
            "application/json",
            serde_json::json!({ "from": from, "to": to, "consistencyPath": path }).to_string(),
        ),
        Ok(Err(error)) => refused(StatusCode::BAD_REQUEST, &error.to_string()),
        Err(_) => refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the proof could not be made",
        ),
    }
}

/// C2SP tlog-tiles: `tile/<L>/<N>[.p/<W>]`, the stored hashes themselves, for mirrors and
/// witnesses that compute their own proofs.
pub async fn tile(State(state): State<AppState>, Path(path): Path<String>) -> Response {
    let Some(log) = state.transparency.clone() else {
        return off();
    };
    let Some((level, index, width)) = cairn_delivery::transparency::parse_tile_path(&path) else {
        return refused(StatusCode::NOT_FOUND, "no such tile");
    };
    let permit = match permit().await {
        Ok(permit) => permit,
        Err(busy) => return busy,
    };
    match tokio::task::spawn_blocking(move || {
        let _permit = permit;
        log.tile(level, index, width)
    })
    .await
    {
        Ok(Ok(Some(bytes))) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response(),
        Ok(Ok(None)) => refused(StatusCode::NOT_FOUND, "the log does not hold this tile yet"),
        _ => refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the tile could not be read",
        ),
    }
}
