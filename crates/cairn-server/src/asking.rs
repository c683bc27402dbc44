//! Questions the gateway asks an upstream on a caller's behalf, about state that lives in the
//! upstream and not in the calls: a secret's rotation stages, a DynamoDB table's key schema.
//! Each question is signed with the credentials the caller signed with, so an upstream that
//! checks signatures and permissions sees the caller, and can refuse.
//!
//! An [`Asker`] owns what it needs, so a question can also be asked after the call has been
//! answered (a rotation the upstream finishes later is watched this way). The caller's secret
//! is looked up again for every question: credentials that expire or are removed stop being
//! used.

use std::time::Duration;

use cairn_capture::services::{AskingAs, BoxFuture, Upstream};
use cairn_upstream::OutgoingBody;
use cairn_wire::sigv4::{self, SignedRequest};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::Value;

use crate::AppState;

/// One caller's call, as the context for questions about it.
pub(crate) struct Asker {
    state: AppState,
    upstream: http::Uri,
    caller: AskingAs,
    host: HeaderValue,
}

impl Asker {
    /// The context of a call whose request is `parts`; `None` when the request carries no
    /// signature to ask as, or no `Host`.
    pub(crate) fn for_call(
        state: &AppState,
        upstream: &http::Uri,
        parts: &Parts,
        region: &str,
    ) -> Option<Self> {
        let claim = sigv4::parse_claim(&SignedRequest {
            method: &parts.method,
            raw_path: parts.uri.path(),
            raw_query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            body: &[],
        })
        .ok()?;
        let host = parts.headers.get(http::header::HOST)?;
        Self::asking_as(
            state,
            upstream,
            AskingAs {
                region: region.to_owned(),
                access_key_id: claim.access_key_id,
                session_token: claim.session_token,
                host: host.to_str().ok()?.to_owned(),
            },
        )
    }

    /// Asks as `caller` again; `None` when its `Host` cannot be a header.
    pub(crate) fn asking_as(
        state: &AppState,
        upstream: &http::Uri,
        caller: AskingAs,
    ) -> Option<Self> {
        Some(Self {
            state: state.clone(),
            upstream: upstream.clone(),
            host: HeaderValue::from_str(&caller.host).ok()?,
            caller,
        })
    }

    async fn ask(
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
            .upstreams
            .client()
            .forward(
                &self.upstream,
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
        let now = self.state.clock.now_millis();
        let (_, secret) = self
            .state
            .credentials
            .authenticate(
                &self.caller.access_key_id,
                self.caller.session_token.as_deref(),
                now,
            )
            .ok()?;
        let amz_date = chrono::DateTime::from_timestamp_millis(now)?
            .format("%Y%m%dT%H%M%SZ")
            .to_string();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, self.host.clone());
        headers.insert("x-amz-date", HeaderValue::from_str(&amz_date).ok()?);
        headers.insert("x-amz-target", HeaderValue::from_static(target));
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
        if let Some(token) = &self.caller.session_token {
            headers.insert("x-amz-security-token", HeaderValue::from_str(token).ok()?);
        }
        sigv4::sign_json_post(
            &mut headers,
            body,
            &self.caller.access_key_id,
            secret.expose(),
            &self.caller.region,
            signing_name,
        )
        .ok()?;
        Some(headers)
    }
}

impl Upstream for Asker {
    fn ask_json<'a>(
        &'a self,
        signing_name: &'a str,
        target: &'static str,
        content_type: &'static str,
        input: &'a Value,
    ) -> BoxFuture<'a, Option<Value>> {
        Box::pin(self.ask(signing_name, target, content_type, input))
    }

    fn caller(&self) -> &AskingAs {
        &self.caller
    }

    fn upstream_id(&self) -> String {
        self.upstream.to_string()
    }

    fn timeout(&self) -> Duration {
        self.state.upstreams.client().timeout()
    }
}
