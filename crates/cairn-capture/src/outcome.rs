//! What an upstream's answer says: its error code and message in each protocol's error
//! shape, and its request ID.

use http::{HeaderMap, StatusCode};
use serde_json::Value;

use cairn_wire::xml::Element;
use cairn_wire::Protocol;

/// The error an upstream answered with, if it answered with one.
pub fn upstream_error(
    protocol: Option<Protocol>,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<(String, String)> {
    if status.as_u16() < 400 {
        return None;
    }
    let from_json = || {
        let value: Value = serde_json::from_slice(body).ok()?;
        let code = header(headers, "x-amzn-errortype")
            .map(str::to_owned)
            .or_else(|| {
                ["__type", "code", "Code"]
                    .iter()
                    .find_map(|key| value.get(*key)?.as_str().map(str::to_owned))
            })?;
        let message = ["message", "Message", "errorMessage"]
            .iter()
            .find_map(|key| value.get(*key)?.as_str().map(str::to_owned))
            .unwrap_or_default();
        Some((clean_code(&code), message))
    };
    let from_xml = || {
        let document = xml_document(body)?;
        let code = document.find("Code")?.text.trim();
        let message = document
            .find("Message")
            .map(|message| message.text.clone())
            .unwrap_or_default();
        Some((clean_code(code), message))
    };
    let found = match protocol {
        Some(Protocol::Query | Protocol::Ec2 | Protocol::RestXml) => from_xml().or_else(from_json),
        _ => from_json().or_else(from_xml),
    };
    // An error with no readable body (S3 HEAD, a proxy's HTML page) still has a status.
    Some(found.unwrap_or_else(|| {
        let reason = status.canonical_reason().unwrap_or("Error");
        (
            reason.replace(' ', ""),
            format!("The upstream answered HTTP {}", status.as_u16()),
        )
    }))
}

/// botocore's rule: drop anything before `#` and after `:` (`aws.protocols#Foo:http://…`).
fn clean_code(code: &str) -> String {
    let code = code.rsplit('#').next().unwrap_or(code);
    code.split(':').next().unwrap_or(code).trim().to_owned()
}

pub fn upstream_request_id(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    ["x-amzn-requestid", "x-amz-request-id", "x-amzn-request-id"]
        .iter()
        .find_map(|name| header(headers, name).map(str::to_owned))
        .or_else(|| {
            let document = xml_document(body)?;
            let id = document
                .find("RequestId")
                .or_else(|| document.find("RequestID"))?;
            Some(id.text.trim().to_owned())
        })
        .filter(|id| !id.is_empty() && id.len() <= 1024)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Error documents and answers read for a code or an ID are small; a large answer is not
/// parsed for them.
const MAX_PARSED_BYTES: usize = 1 << 20;

fn xml_document(body: &[u8]) -> Option<Element> {
    if body.len() > MAX_PARSED_BYTES {
        return None;
    }
    Element::parse(std::str::from_utf8(body).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors() {
        let body = br#"{"__type": "com.amazonaws.kms#NotFoundException", "message": "Invalid keyId nope"}"#;
        assert_eq!(
            upstream_error(
                Some(Protocol::Json),
                StatusCode::BAD_REQUEST,
                &HeaderMap::new(),
                body
            ),
            Some(("NotFoundException".into(), "Invalid keyId nope".into()))
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amzn-errortype",
            "ResourceNotFoundException:http://internal".parse().unwrap(),
        );
        assert_eq!(
            upstream_error(
                Some(Protocol::RestJson),
                StatusCode::NOT_FOUND,
                &headers,
                br#"{"Message": "gone"}"#
            ),
            Some(("ResourceNotFoundException".into(), "gone".into()))
        );
        assert_eq!(
            upstream_error(
                Some(Protocol::Json),
                StatusCode::OK,
                &HeaderMap::new(),
                body
            ),
            None
        );
    }

    #[test]
    fn xml_errors_and_bodiless_errors() {
        let query = b"<ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>Role x &amp; y</Message></Error><RequestId>r-1</RequestId></ErrorResponse>";
        assert_eq!(
            upstream_error(
                Some(Protocol::Query),
                StatusCode::NOT_FOUND,
                &HeaderMap::new(),
                query
            ),
            Some(("NoSuchEntity".into(), "Role x & y".into()))
        );
        assert_eq!(
            upstream_request_id(&HeaderMap::new(), query).as_deref(),
            Some("r-1")
        );
        assert_eq!(
            upstream_error(
                Some(Protocol::RestXml),
                StatusCode::NOT_FOUND,
                &HeaderMap::new(),
                b""
            ),
            Some(("NotFound".into(), "The upstream answered HTTP 404".into()))
        );
    }
}
