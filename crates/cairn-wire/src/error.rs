//! AWS errors: what went wrong, as a code, a message and an HTTP status, and the one place
//! where an error becomes the document each protocol's clients parse.

use http::StatusCode;
use serde_json::json;

use crate::protocol::Protocol;
use crate::sigv4::SignatureError;
use crate::xml::Element;

/// An error as one protocol's clients read it: status, headers and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorDocument {
    pub status: StatusCode,
    pub content_type: &'static str,
    /// Header name and value pairs to send besides the content type.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// An error as an AWS service reports it. The detail behind an internal failure goes to the
/// log; the client sees only the code and a message meant for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AwsError {
    pub code: String,
    pub message: String,
    pub status: StatusCode,
}

impl AwsError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn internal_failure() -> Self {
        Self::new(
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        )
        .with_status(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new("SerializationException", message)
    }

    /// The body does not hash to the signed `x-amz-content-sha256` (S3's spelling).
    pub fn content_sha256_mismatch() -> Self {
        Self::new(
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    }

    /// A body that breaks its signed `x-amz-content-sha256`'s promise, as S3 reports it.
    pub fn from_payload_error(error: &crate::sigv4::PayloadError) -> Self {
        use crate::chunked::ChunkedError;
        use crate::sigv4::PayloadError;
        match error {
            PayloadError::Sha256Mismatch => Self::content_sha256_mismatch(),
            PayloadError::Chunked(
                ChunkedError::ChunkSignatureMismatch | ChunkedError::TrailerSignatureMismatch,
            ) => Self::new(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. \
                 Check your key and signing method.",
            )
            .with_status(StatusCode::FORBIDDEN),
            PayloadError::Chunked(
                chunked @ (ChunkedError::Incomplete | ChunkedError::DecodedLengthMismatch { .. }),
            ) => Self::new("IncompleteBody", chunked.to_string()),
            PayloadError::Chunked(malformed @ ChunkedError::Malformed(_)) => {
                Self::new("InvalidRequest", malformed.to_string())
            }
        }
    }

    /// `x-amz-content-sha256` is neither a hash nor one of the keywords.
    pub fn invalid_declared_payload(detail: &crate::sigv4::InvalidDeclaredPayload) -> Self {
        Self::new("InvalidArgument", detail.to_string())
    }

    /// The AWS JSON 1.0/1.1 error body: `{"__type": code, "message": text}`.
    pub fn json_body(&self) -> Vec<u8> {
        serde_json::to_vec(&json!({"__type": self.code, "message": self.message}))
            .unwrap_or_default()
    }

    /// The error as `protocol`'s clients parse it (botocore's parsers, and the Go and JS
    /// SDKs'): JSON 1.0/1.1 `__type`, rest-json's `X-Amzn-ErrorType`, query's
    /// `<ErrorResponse>`, EC2's `<Response><Errors>`, rest-xml's `<Error>`. `None` is a
    /// request whose service could not be told: the JSON shape, which every SDK reads.
    pub fn render(&self, protocol: Option<Protocol>, request_id: &str) -> ErrorDocument {
        let mut headers = vec![("x-amzn-RequestId", request_id.to_owned())];
        let (content_type, body) = match protocol {
            Some(Protocol::Query) => {
                let kind = if self.status.is_server_error() {
                    "Receiver"
                } else {
                    "Sender"
                };
                let document = Element::new("ErrorResponse")
                    .with_child(
                        Element::new("Error")
                            .with_child(Element::text("Type", kind))
                            .with_child(Element::text("Code", &self.code))
                            .with_child(Element::text("Message", &self.message)),
                    )
                    .with_child(Element::text("RequestId", request_id));
                ("text/xml", document.to_document(None))
            }
            Some(Protocol::Ec2) => {
                let document = Element::new("Response")
                    .with_child(
                        Element::new("Errors").with_child(
                            Element::new("Error")
                                .with_child(Element::text("Code", &self.code))
                                .with_child(Element::text("Message", &self.message)),
                        ),
                    )
                    .with_child(Element::text("RequestID", request_id));
                ("text/xml", document.to_document(None))
            }
            Some(Protocol::RestXml) => {
                headers.push(("x-amz-request-id", request_id.to_owned()));
                let document = Element::new("Error")
                    .with_child(Element::text("Code", &self.code))
                    .with_child(Element::text("Message", &self.message))
                    .with_child(Element::text("RequestId", request_id));
                ("application/xml", document.to_document(None))
            }
            Some(Protocol::RestJson) => {
                headers.push(("x-amzn-ErrorType", self.code.clone()));
                (
                    "application/json",
                    String::from_utf8_lossy(&self.json_body()).into_owned(),
                )
            }
            Some(Protocol::Json | Protocol::SmithyRpcV2Cbor) | None => {
                headers.push(("x-amzn-ErrorType", self.code.clone()));
                (
                    "application/x-amz-json-1.1",
                    String::from_utf8_lossy(&self.json_body()).into_owned(),
                )
            }
        };
        ErrorDocument {
            status: self.status,
            content_type,
            headers,
            body: body.into_bytes(),
        }
    }

    /// How the JSON protocols report temporary credentials that are not accepted.
    pub fn invalid_session_token(expired: bool) -> Self {
        if expired {
            Self::new(
                "ExpiredTokenException",
                "The security token included in the request is expired",
            )
        } else {
            Self::new(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        }
    }

    /// The same refusal as the query protocol (STS, IAM, ...) spells it: other codes, and
    /// HTTP 403 for everything but an incomplete signature.
    pub fn for_query_protocol(self) -> Self {
        let (code, status) = match self.code.as_str() {
            "MissingAuthenticationTokenException" => {
                ("MissingAuthenticationToken", StatusCode::FORBIDDEN)
            }
            "IncompleteSignatureException" => ("IncompleteSignature", StatusCode::BAD_REQUEST),
            "UnrecognizedClientException" => ("InvalidClientTokenId", StatusCode::FORBIDDEN),
            "InvalidSignatureException" => ("SignatureDoesNotMatch", StatusCode::FORBIDDEN),
            "ExpiredTokenException" => ("ExpiredToken", StatusCode::FORBIDDEN),
            _ => return self,
        };
        Self {
            code: code.to_owned(),
            status,
            ..self
        }
    }

    /// How the JSON protocols report a request that failed authentication.
    pub fn from_signature_error(error: &SignatureError) -> Self {
        match error {
            SignatureError::Missing => {
                Self::new("MissingAuthenticationTokenException", "Missing Authentication Token")
            }
            SignatureError::Incomplete(detail) => Self::new("IncompleteSignatureException", detail.clone()),
            SignatureError::UnknownAccessKey { .. } => Self::new(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ),
            SignatureError::Mismatch { .. } => Self::new(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
            ),
            SignatureError::Expired { signed, earliest, now, .. } => Self::new(
                "InvalidSignatureException",
                format!("Signature expired: {signed} is now earlier than {earliest} ({now} - 15 min.)"),
            ),
            SignatureError::NotYetCurrent { signed, latest, now, .. } => Self::new(
                "InvalidSignatureException",
                format!("Signature not yet current: {signed} is still later than {latest} ({now} + 15 min.)"),
            ),
            // S3's answer to the same request (`HeadersNotSigned`).
            SignatureError::HeadersNotSigned { names, .. } => Self::new(
                "AccessDenied",
                format!("There were headers present in the request which were not signed: {}", names.join(", ")),
            )
            .with_status(StatusCode::FORBIDDEN),
            SignatureError::QueryNotSigned { names, .. } => Self::new(
                "AccessDenied",
                format!(
                    "Query-string authentication version 2 does not cover these parameters; sign the request with Signature Version 4: {}",
                    names.join(", ")
                ),
            )
            .with_status(StatusCode::FORBIDDEN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protocol_gets_its_own_error_document() {
        let error = AwsError::new("NoSuchThing", "a <b> & c");
        let code_and_message = |document: &ErrorDocument| {
            let text = String::from_utf8(document.body.clone()).unwrap();
            let root = Element::parse(&text).unwrap();
            (
                root.name.clone(),
                root.find("Code").unwrap().text.clone(),
                root.find("Message").unwrap().text.clone(),
            )
        };
        let query = error.render(Some(Protocol::Query), "r-1");
        assert_eq!(
            code_and_message(&query),
            (
                "ErrorResponse".into(),
                "NoSuchThing".into(),
                "a <b> & c".into()
            )
        );
        assert_eq!(query.content_type, "text/xml");
        let ec2 = error.render(Some(Protocol::Ec2), "r-1");
        assert_eq!(code_and_message(&ec2).0, "Response");
        let rest_xml = error.render(Some(Protocol::RestXml), "r-1");
        assert_eq!(code_and_message(&rest_xml).0, "Error");
        assert!(rest_xml
            .headers
            .contains(&("x-amz-request-id", "r-1".into())));
        for protocol in [None, Some(Protocol::Json), Some(Protocol::RestJson)] {
            let json = error.render(protocol, "r-1");
            let value: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
            assert_eq!(value["__type"], "NoSuchThing");
            assert!(json
                .headers
                .contains(&("x-amzn-ErrorType", "NoSuchThing".into())));
        }
        let server = AwsError::internal_failure().render(Some(Protocol::Query), "r");
        assert!(String::from_utf8(server.body)
            .unwrap()
            .contains("<Type>Receiver</Type>"));
    }

    #[test]
    fn json_body_has_type_and_message() {
        let body = AwsError::new("InvalidMaxResultsException", "too many").json_body();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["__type"], "InvalidMaxResultsException");
        assert_eq!(value["message"], "too many");
    }
}
