//! Questions the gateway asks an upstream on a caller's behalf, about state that lives in the
//! upstream and not in the calls: a secret's rotation stages, a DynamoDB table's key schema.
//! Each question is signed with the credentials the caller signed with, so an upstream that
//! checks signatures and permissions sees the caller, and can refuse.

use cairn_capture::OutgoingBody;
use cairn_wire::sigv4::{self, SignedRequest};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::Value;

use crate::AppState;

/// One caller's call, as the context for questions about it.
pub(crate) struct Asker<'a> {
    pub state: &'a AppState,
    pub upstream: &'a http::Uri,
    pub parts: &'a Parts,
    pub region: &'a str,
}

impl Asker<'_> {
    /// Asks a JSON-protocol operation (`target`, as in `X-Amz-Target`) of the upstream;
    /// `None` when it did not answer with success and JSON.
    pub(crate) async fn ask_json(
        &self,
        signing_name: &str,
        target: &'static str,
        content_type: &'static str,
        input: &Value,
    ) -> Option<Value> {
        let body = serde_json::to_vec(input).ok()?;
        let headers = self.signed_headers(signing_name, target, content_type, &body)?;
        let reply = self
            .state
            .gateway
            .forward(
                self.upstream,
                &Method::POST,
                "/",
                &headers,
                OutgoingBody::whole(body.into()),
            )
            .await
            .ok()?;
        if !reply.status.is_success() {
            tracing::debug!(status = %reply.status, target, "question to the upstream failed");
            return None;
        }
        serde_json::from_slice(reply.body.recorded()).ok()
    }

    /// A JSON-protocol request's headers, signed with the credentials the caller signed with.
    fn signed_headers(
        &self,
        signing_name: &str,
        target: &'static str,
        content_type: &'static str,
        body: &[u8],
    ) -> Option<HeaderMap> {
        let parts = self.parts;
        let claim = sigv4::parse_claim(&SignedRequest {
            method: &parts.method,
            raw_path: parts.uri.path(),
            raw_query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            body: &[],
        })
        .ok()?;
        let now = self.state.clock.now_millis();
        let (_, secret) = self
            .state
            .credentials
            .authenticate(&claim.access_key_id, claim.session_token.as_deref(), now)
            .ok()?;
        let amz_date = chrono::DateTime::from_timestamp_millis(now)?
            .format("%Y%m%dT%H%M%SZ")
            .to_string();
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::HOST,
            parts.headers.get(http::header::HOST)?.clone(),
        );
        headers.insert("x-amz-date", HeaderValue::from_str(&amz_date).ok()?);
        headers.insert("x-amz-target", HeaderValue::from_static(target));
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
        if let Some(token) = &claim.session_token {
            headers.insert("x-amz-security-token", HeaderValue::from_str(token).ok()?);
        }
        sigv4::sign_json_post(
            &mut headers,
            body,
            &claim.access_key_id,
            secret.expose(),
            self.region,
            signing_name,
        )
        .ok()?;
        Some(headers)
    }
}
