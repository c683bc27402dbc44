//! Bodies too large to hold: they pass through Cairn chunk by chunk, so a 1 GB S3 upload or
//! download needs a few chunks of memory, not a gigabyte.
//!
//! A streamed request body is checked on the way: it must keep the promise of the signed
//! `x-amz-content-sha256` (its SHA-256, or its aws-chunked signatures), it must stay under a
//! size bound, and it must keep moving. The last
//! chunk is withheld until the check passes, so an upstream never receives a complete body
//! that failed it: it sees a body cut short and drops the request (fail closed).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cairn_wire::sigv4::{PayloadCheck, PayloadError};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body that yields an already-read prefix, then the rest of the original body.
pub struct Prefixed<B> {
    prefix: Option<Bytes>,
    rest: B,
}

impl<B> Prefixed<B> {
    pub fn new(prefix: Bytes, rest: B) -> Self {
        Self {
            prefix: (!prefix.is_empty()).then_some(prefix),
            rest,
        }
    }
}

impl<B> Body for Prefixed<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest)
            .poll_frame(cx)
            .map(|frame| frame.map(|frame| frame.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let prefix = self.prefix.as_ref().map_or(0, |prefix| prefix.len() as u64);
        grown_by(self.rest.size_hint(), prefix)
    }
}

/// `hint` with `extra` bytes more at both ends (an exact hint stays exact, so the upstream
/// gets a Content-Length).
fn grown_by(hint: SizeHint, extra: u64) -> SizeHint {
    let mut grown = SizeHint::new();
    if let Some(upper) = hint.upper() {
        grown.set_upper(upper.saturating_add(extra));
    }
    grown.set_lower(hint.lower().saturating_add(extra));
    grown
}

/// Why a streamed request body did not reach its end intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFailure {
    Payload(PayloadError),
    TooLarge { limit: u64 },
    Stalled { idle: Duration },
    Client(String),
}

impl std::fmt::Display for StreamFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Payload(error) => write!(formatter, "{error}"),
            Self::TooLarge { limit } => write!(formatter, "the body is larger than {limit} bytes"),
            Self::Stalled { idle } => write!(formatter, "the body stopped arriving for {idle:?}"),
            Self::Client(detail) => write!(formatter, "the body could not be read: {detail}"),
        }
    }
}

impl std::error::Error for StreamFailure {}

/// What the gateway learns from a streamed body once the upstream call is over.
#[derive(Clone, Default)]
pub struct StreamReport {
    failure: Arc<Mutex<Option<StreamFailure>>>,
    sent: Arc<Notify>,
}

impl StreamReport {
    pub fn failure(&self) -> Option<StreamFailure> {
        self.failure.lock().ok().and_then(|failure| failure.clone())
    }

    /// Resolves once the whole body has gone upstream (at once for a body held whole).
    pub async fn sent(&self) {
        self.sent.notified().await;
    }

    pub(crate) fn mark_sent(&self) {
        self.sent.notify_one();
    }

    fn fail(&self, failure: StreamFailure) -> BoxError {
        if let Ok(mut slot) = self.failure.lock() {
            *slot = Some(failure.clone());
        }
        Box::new(failure)
    }
}

/// A request body checked while it streams: see the module comment.
pub struct CheckedBody<B> {
    inner: B,
    check: Option<PayloadCheck>,
    held: Option<Bytes>,
    seen: u64,
    limit: u64,
    idle: Duration,
    idle_deadline: Pin<Box<Sleep>>,
    report: StreamReport,
    done: bool,
}

impl<B> CheckedBody<B> {
    pub fn new(
        inner: B,
        check: Option<PayloadCheck>,
        limit: u64,
        idle: Duration,
        report: StreamReport,
    ) -> Self {
        Self {
            inner,
            check,
            held: None,
            seen: 0,
            limit,
            idle,
            idle_deadline: Box::pin(tokio::time::sleep(idle)),
            report,
            done: false,
        }
    }
}

impl<B> Body for CheckedBody<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(this.held.take().map(|chunk| Ok(Frame::data(chunk))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {
                    if this.idle_deadline.as_mut().poll(cx).is_ready() {
                        this.done = true;
                        this.held = None;
                        let idle = this.idle;
                        return Poll::Ready(Some(Err(this
                            .report
                            .fail(StreamFailure::Stalled { idle }))));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let deadline = Instant::now() + this.idle;
                    this.idle_deadline.as_mut().reset(deadline);
                    // Trailers in HTTP framing carry nothing an AWS call needs.
                    let Ok(chunk) = frame.into_data() else {
                        continue;
                    };
                    this.seen += chunk.len() as u64;
                    if this.seen > this.limit {
                        this.done = true;
                        this.held = None;
                        let limit = this.limit;
                        return Poll::Ready(Some(Err(this
                            .report
                            .fail(StreamFailure::TooLarge { limit }))));
                    }
                    if let Some(Err(error)) = this.check.as_mut().map(|check| check.update(&chunk))
                    {
                        this.done = true;
                        this.held = None;
                        return Poll::Ready(Some(Err(this
                            .report
                            .fail(StreamFailure::Payload(error)))));
                    }
                    if let Some(previous) = this.held.replace(chunk) {
                        return Poll::Ready(Some(Ok(Frame::data(previous))));
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    this.done = true;
                    this.held = None;
                    return Poll::Ready(Some(Err(this
                        .report
                        .fail(StreamFailure::Client(error.to_string())))));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    if let Some(Err(error)) = this.check.take().map(PayloadCheck::finish) {
                        this.held = None;
                        return Poll::Ready(Some(Err(this
                            .report
                            .fail(StreamFailure::Payload(error)))));
                    }
                    this.report.mark_sent();
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.held.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let held = self.held.as_ref().map_or(0, |chunk| chunk.len() as u64);
        grown_by(self.inner.size_hint(), held)
    }
}

/// A request body on its way upstream, with the report of how its streaming went.
pub struct OutgoingBody {
    pub(crate) body: UnsyncBoxBody<Bytes, BoxError>,
    pub(crate) report: StreamReport,
}

impl OutgoingBody {
    /// A body read whole (and checked) before forwarding.
    pub fn whole(bytes: Bytes) -> Self {
        let report = StreamReport::default();
        report.mark_sent();
        Self {
            body: Full::new(bytes)
                .map_err(|never| match never {})
                .boxed_unsync(),
            report,
        }
    }

    /// The whole body, read and checked here instead of being forwarded: for a call Cairn
    /// answers itself (its embedded S3). More than `limit` bytes is refused.
    pub async fn collect(self, limit: usize) -> Result<Bytes, crate::GatewayError> {
        let Self { mut body, report } = self;
        let mut collected = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| match report.failure() {
                Some(failure) => crate::GatewayError::RequestBody(failure),
                None => crate::GatewayError::RequestBody(StreamFailure::Client(error.to_string())),
            })?;
            if let Ok(data) = frame.into_data() {
                if collected.len() + data.len() > limit {
                    return Err(crate::GatewayError::RequestBody(StreamFailure::TooLarge {
                        limit: limit as u64,
                    }));
                }
                collected.extend_from_slice(&data);
            }
        }
        Ok(collected.freeze())
    }

    /// A body too large to hold: `prefix` was read already, `rest` follows as it arrives.
    pub fn streamed<B>(
        prefix: Bytes,
        rest: B,
        check: Option<PayloadCheck>,
        limit: u64,
        idle: Duration,
    ) -> Self
    where
        B: Body<Data = Bytes> + Unpin + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let report = StreamReport::default();
        let checked = CheckedBody::new(
            Prefixed::new(prefix, rest),
            check,
            limit,
            idle,
            report.clone(),
        );
        Self {
            body: checked.boxed_unsync(),
            report,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use cairn_wire::sigv4::DeclaredPayload;
    use sha2::{Digest, Sha256};

    /// Chunks that are all ready at once, or, with none left and `stalls`, never more.
    struct Chunks {
        parts: VecDeque<Bytes>,
        stalls: bool,
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            match self.parts.pop_front() {
                Some(part) => Poll::Ready(Some(Ok(Frame::data(part)))),
                None if self.stalls => Poll::Pending,
                None => Poll::Ready(None),
            }
        }
    }

    fn chunks(parts: &[&'static [u8]]) -> Chunks {
        Chunks {
            parts: parts.iter().map(|part| Bytes::from_static(part)).collect(),
            stalls: false,
        }
    }

    fn digest_of(data: &[u8]) -> Option<PayloadCheck> {
        let declared = DeclaredPayload::Sha256(Sha256::digest(data).into());
        PayloadCheck::for_declared(declared, None, &http::HeaderMap::new()).unwrap()
    }

    async fn drain(mut body: CheckedBody<Chunks>) -> (Vec<Bytes>, Option<BoxError>) {
        let mut delivered = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => delivered.push(frame.into_data().unwrap_or_default()),
                Err(error) => return (delivered, Some(error)),
            }
        }
        (delivered, None)
    }

    #[tokio::test]
    async fn a_matching_body_passes_whole_and_reports_sent() {
        let report = StreamReport::default();
        let body = CheckedBody::new(
            chunks(&[b"hello ", b"big ", b"world"]),
            digest_of(b"hello big world"),
            1 << 20,
            Duration::from_secs(5),
            report.clone(),
        );
        let (delivered, error) = drain(body).await;
        assert!(error.is_none());
        assert_eq!(delivered.concat(), b"hello big world");
        assert_eq!(report.failure(), None);
        tokio::time::timeout(Duration::from_secs(1), report.sent())
            .await
            .expect("a complete body is reported sent");
    }

    #[tokio::test]
    async fn a_mismatching_body_never_delivers_its_last_chunk() {
        let report = StreamReport::default();
        let body = CheckedBody::new(
            chunks(&[b"hello ", b"big ", b"world"]),
            digest_of(b"hello big WORLD"),
            1 << 20,
            Duration::from_secs(5),
            report.clone(),
        );
        let (delivered, error) = drain(body).await;
        assert!(error.is_some());
        assert_eq!(delivered.concat(), b"hello big ");
        assert_eq!(
            report.failure(),
            Some(StreamFailure::Payload(PayloadError::Sha256Mismatch))
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_cut_off() {
        let report = StreamReport::default();
        let body = CheckedBody::new(
            chunks(&[b"0123456789", b"0123456789"]),
            None,
            15,
            Duration::from_secs(5),
            report.clone(),
        );
        let (delivered, error) = drain(body).await;
        assert!(error.is_some());
        assert!(delivered.concat().len() <= 15);
        assert_eq!(
            report.failure(),
            Some(StreamFailure::TooLarge { limit: 15 })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_after_the_idle_time() {
        let report = StreamReport::default();
        let mut stalled = chunks(&[b"a start"]);
        stalled.stalls = true;
        let body = CheckedBody::new(
            stalled,
            None,
            1 << 20,
            Duration::from_secs(3),
            report.clone(),
        );
        let (delivered, error) = drain(body).await;
        assert!(error.is_some());
        assert!(delivered.is_empty(), "the held chunk is never delivered");
        assert_eq!(
            report.failure(),
            Some(StreamFailure::Stalled {
                idle: Duration::from_secs(3)
            })
        );
    }

    #[test]
    fn an_exact_length_stays_exact_with_a_prefix_before_it() {
        let mut rest = SizeHint::new();
        rest.set_exact(10);
        assert_eq!(grown_by(rest, 5).exact(), Some(15));
        assert_eq!(grown_by(SizeHint::new(), 5).lower(), 5);
        assert_eq!(grown_by(SizeHint::new(), 5).upper(), None);
    }

    #[tokio::test]
    async fn a_prefix_comes_before_the_rest() {
        let body = Prefixed::new(Bytes::from_static(b"first "), chunks(&[b"then ", b"rest"]));
        let collected = body.collect().await.map(|body| body.to_bytes());
        assert_eq!(collected.ok().as_deref(), Some(&b"first then rest"[..]));
    }
}
