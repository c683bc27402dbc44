//! `cairn-recognize`: reads one JSON request description per line on stdin
//! (`{"signing_name", "method", "path", "query": [[k, v]], "target", "form": [[k, v]],
//! "headers": [[name, value]]}`)
//! and prints `service operation` (or `-`) per line. The end-to-end suite uses it to check
//! the routing table against requests serialised by botocore itself.

use std::io::{BufRead, Write};

use cairn_capture::{Call, RoutingTable};
use serde::Deserialize;

#[derive(Deserialize)]
struct Line {
    signing_name: Option<String>,
    method: String,
    path: String,
    #[serde(default)]
    query: Vec<(String, String)>,
    target: Option<String>,
    #[serde(default)]
    form: Vec<(String, String)>,
    #[serde(default)]
    headers: Vec<(String, String)>,
}

fn main() {
    let table = RoutingTable::builtin();
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout());
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let answer = match serde_json::from_str::<Line>(&line) {
            Ok(request) => {
                let headers: http::HeaderMap = request
                    .headers
                    .iter()
                    .filter_map(|(name, value)| {
                        Some((
                            http::HeaderName::from_bytes(name.as_bytes()).ok()?,
                            http::HeaderValue::from_str(value).ok()?,
                        ))
                    })
                    .collect();
                let call = Call {
                    signing_name: request.signing_name.as_deref(),
                    method: &request.method,
                    raw_path: &request.path,
                    query: &request.query,
                    target: request.target.as_deref(),
                    form: &request.form,
                    headers: Some(&headers),
                };
                match table.recognize(&call) {
                    Some(found) => format!("{} {}", found.service.id, found.operation),
                    None => "-".to_owned(),
                }
            }
            Err(error) => format!("! {error}"),
        };
        if writeln!(out, "{answer}").is_err() {
            break;
        }
    }
}
