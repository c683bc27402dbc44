//! `cairn-bench bare-proxy`: the floor of any gateway on this machine. The same HTTP stack
//! Cairn's gateway uses (axum/hyper serving, cairn-capture's upstream client forwarding),
//! with nothing else: no signature check, no record, no fsync. Run as its own process with
//! two worker threads, like `cairn serve`, so the benchmark can tell what proxying costs
//! from what Cairn adds to it.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::serve::ListenerExt;
use cairn_upstream::{GatewayClient, OutgoingBody};
use http::StatusCode;

struct Proxy {
    client: GatewayClient,
    upstream: http::Uri,
}

pub fn run(upstream: &str) -> anyhow::Result<()> {
    let upstream: http::Uri = upstream.parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let proxy = Arc::new(Proxy {
            client: GatewayClient::new(Duration::from_secs(30)),
            upstream,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("bare proxy listening on http://{}", listener.local_addr()?);
        let listener = listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        let app = axum::Router::new().fallback(forward).with_state(proxy);
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return status(StatusCode::PAYLOAD_TOO_LARGE);
    };
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    match proxy
        .client
        .forward(
            &proxy.upstream,
            &parts.method,
            path,
            &parts.headers,
            OutgoingBody::whole(body),
        )
        .await
    {
        Ok(reply) => reply.into_response().map(Body::new),
        Err(_) => status(StatusCode::BAD_GATEWAY),
    }
}

fn status(code: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code;
    response
}
