//! Who an unsigned STS federation call says its caller is, read from its own input as AWS's
//! records show it: a web identity token's issuer, audience and subject, a SAML assertion's
//! issuer and subject. The token or assertion is read, not verified (the upstream that
//! serves the call verifies it); nothing unreadable is claimed, and every value is bounded.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use cairn_wire::xml::Element;
use serde_json::Value;

use crate::recorder::AnonymousCaller;

/// Longer tokens or assertions than this are not read.
const MAX_READ_BYTES: usize = 64 * 1024;
/// A claim longer than this is cut.
const MAX_CLAIM_BYTES: usize = 256;

fn bounded(text: &str) -> String {
    let mut end = text.len().min(MAX_CLAIM_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// AssumeRoleWithWebIdentity: `WebIdentityUser` with the token's provider (its `iss`, without
/// a scheme, as AWS writes `accounts.google.com`), `principalId` `iss:aud:sub`, `userName`
/// the subject.
pub(crate) fn web_identity(token: &str) -> AnonymousCaller {
    let claims = (token.len() <= MAX_READ_BYTES)
        .then(|| token.split('.').nth(1))
        .flatten()
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok())
        .and_then(|payload| serde_json::from_slice::<Value>(&payload).ok())
        .unwrap_or(Value::Null);
    let text = |name: &str| match claims.get(name) {
        Some(Value::String(text)) => bounded(text),
        Some(Value::Array(items)) => items
            .first()
            .and_then(Value::as_str)
            .map(bounded)
            .unwrap_or_default(),
        _ => String::new(),
    };
    let issuer = text("iss");
    let provider = issuer
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .to_owned();
    let subject = text("sub");
    AnonymousCaller::WebIdentity {
        principal_id: format!("{provider}:{}:{subject}", text("aud")),
        identity_provider: provider,
        user_name: subject,
    }
}

/// AssumeRoleWithSAML: `SAMLUser` with the identity provider's ARN, `principalId`
/// `issuer:subject`, `userName` the assertion's `NameID`.
pub(crate) fn saml(assertion: &str, principal_arn: &str) -> AnonymousCaller {
    let document = (assertion.len() <= MAX_READ_BYTES)
        .then(|| STANDARD.decode(assertion.trim()).ok())
        .flatten()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| Element::parse(&text).ok());
    let text = |name: &str| {
        document
            .as_ref()
            .and_then(|document| document.find(name))
            .map(|element| bounded(element.text.trim()))
            .unwrap_or_default()
    };
    let subject = text("NameID");
    AnonymousCaller::Saml {
        principal_id: format!("{}:{subject}", text("Issuer")),
        identity_provider: bounded(principal_arn),
        user_name: subject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_web_identity_tokens_claims_name_the_caller() {
        let payload = URL_SAFE_NO_PAD
            .encode(br#"{"iss":"https://accounts.google.com","aud":"client-1","sub":"1234"}"#);
        let token = format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2lnbmF0dXJl");
        assert_eq!(
            web_identity(&token),
            AnonymousCaller::WebIdentity {
                identity_provider: "accounts.google.com".into(),
                principal_id: "accounts.google.com:client-1:1234".into(),
                user_name: "1234".into(),
            }
        );
        assert_eq!(
            web_identity("not a token"),
            AnonymousCaller::WebIdentity {
                identity_provider: String::new(),
                principal_id: "::".into(),
                user_name: String::new(),
            },
            "an unreadable token claims nothing"
        );
    }

    #[test]
    fn a_saml_assertions_subject_names_the_caller() {
        let xml = r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"><saml:Issuer>http://idp.example/</saml:Issuer><saml:Assertion><saml:Subject><saml:NameID>alice</saml:NameID></saml:Subject></saml:Assertion></samlp:Response>"#;
        let caller = saml(
            &STANDARD.encode(xml),
            "arn:aws:iam::123456789012:saml-provider/idp",
        );
        assert_eq!(
            caller,
            AnonymousCaller::Saml {
                identity_provider: "arn:aws:iam::123456789012:saml-provider/idp".into(),
                principal_id: "http://idp.example/:alice".into(),
                user_name: "alice".into(),
            }
        );
    }
}
