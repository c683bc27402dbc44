//! STS as Cairn serves it: the AWS query protocol (form-encoded `Action=…&Version=2011-06-15`,
//! XML answers) for GetCallerIdentity, AssumeRole and GetSessionToken.

use http::StatusCode;

use crate::xml::Element;
use crate::AwsError;

pub const EVENT_SOURCE: &str = "sts.amazonaws.com";
pub const API_VERSION: &str = "2011-06-15";
const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
pub const XML_CONTENT_TYPE: &str = "text/xml";

/// STS operations in the model that Cairn does not serve: they are answered with an error,
/// never forwarded, since credentials an upstream issued could not be verified here.
const NOT_SERVED: &[&str] = &[
    "AssumeRoot",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
    "DecodeAuthorizationMessage",
    "GetAccessKeyInfo",
    "GetDelegatedAccessToken",
    "GetFederationToken",
    "GetWebIdentityToken",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StsRequest {
    GetCallerIdentity,
    AssumeRole(AssumeRoleRequest),
    GetSessionToken { duration_seconds: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssumeRoleRequest {
    pub role_arn: String,
    pub role_session_name: String,
    pub duration_seconds: Option<u32>,
}

impl StsRequest {
    pub fn name(&self) -> &'static str {
        match self {
            Self::GetCallerIdentity => "GetCallerIdentity",
            Self::AssumeRole(_) => "AssumeRole",
            Self::GetSessionToken { .. } => "GetSessionToken",
        }
    }
}

/// The operation a request names, for the record, even when the request is not valid.
pub fn claimed_action(pairs: &[(String, String)]) -> Option<&str> {
    pairs
        .iter()
        .find(|(key, _)| key == "Action")
        .map(|(_, value)| value.as_str())
}

/// Parses the form (body and query pairs together) of an STS call.
pub fn parse(pairs: &[(String, String)]) -> Result<StsRequest, AwsError> {
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let action = get("Action").ok_or_else(|| {
        AwsError::new("MissingAction", "Missing Action").with_status(StatusCode::BAD_REQUEST)
    })?;
    if let Some(version) = get("Version") {
        if version != API_VERSION {
            return Err(AwsError::new(
                "InvalidAction",
                format!("Could not find operation {action} for version {version}"),
            ));
        }
    }
    match action {
        "GetCallerIdentity" => Ok(StsRequest::GetCallerIdentity),
        "AssumeRole" => {
            let mut errors = Vec::new();
            let role_arn = required(get("RoleArn"), "roleArn", &mut errors);
            if let Some(arn) = &role_arn {
                check_length(arn, "roleArn", 20, 2048, &mut errors);
            }
            let role_session_name =
                required(get("RoleSessionName"), "roleSessionName", &mut errors);
            if let Some(name) = &role_session_name {
                check_length(name, "roleSessionName", 2, 64, &mut errors);
                if !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
                {
                    errors.push(format!(
                        "Value '{name}' at 'roleSessionName' failed to satisfy constraint: \
                         Member must satisfy regular expression pattern: [\\w+=,.@-]*"
                    ));
                }
            }
            let duration_seconds = duration(
                get("DurationSeconds"),
                "durationSeconds",
                900,
                43_200,
                &mut errors,
            );
            validation_result(errors)?;
            Ok(StsRequest::AssumeRole(AssumeRoleRequest {
                role_arn: role_arn.unwrap_or_default(),
                role_session_name: role_session_name.unwrap_or_default(),
                duration_seconds,
            }))
        }
        "GetSessionToken" => {
            let mut errors = Vec::new();
            let duration_seconds = duration(
                get("DurationSeconds"),
                "durationSeconds",
                900,
                129_600,
                &mut errors,
            );
            validation_result(errors)?;
            Ok(StsRequest::GetSessionToken {
                duration_seconds: duration_seconds.unwrap_or(43_200),
            })
        }
        name if NOT_SERVED.contains(&name) => Err(AwsError::new(
            "InvalidAction",
            format!("Cairn does not serve sts:{name}."),
        )),
        name => Err(AwsError::new(
            "InvalidAction",
            format!("Could not find operation {name} for version {API_VERSION}"),
        )),
    }
}

fn required(value: Option<&str>, member: &str, errors: &mut Vec<String>) -> Option<String> {
    if value.is_none() {
        errors.push(format!(
            "Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ));
    }
    value.map(str::to_owned)
}

fn check_length(value: &str, member: &str, min: usize, max: usize, errors: &mut Vec<String>) {
    let length = value.chars().count();
    if length < min {
        errors.push(format!(
            "Value '{value}' at '{member}' failed to satisfy constraint: \
             Member must have length greater than or equal to {min}"
        ));
    } else if length > max {
        errors.push(format!(
            "Value at '{member}' failed to satisfy constraint: \
             Member must have length less than or equal to {max}"
        ));
    }
}

fn duration(
    value: Option<&str>,
    member: &str,
    min: u32,
    max: u32,
    errors: &mut Vec<String>,
) -> Option<u32> {
    let text = value?;
    match text.parse::<i64>() {
        Ok(seconds) if seconds < i64::from(min) => {
            errors.push(format!(
                "Value '{seconds}' at '{member}' failed to satisfy constraint: \
                 Member must have value greater than or equal to {min}"
            ));
            None
        }
        Ok(seconds) if seconds > i64::from(max) => {
            errors.push(format!(
                "Value '{seconds}' at '{member}' failed to satisfy constraint: \
                 Member must have value less than or equal to {max}"
            ));
            None
        }
        Ok(seconds) => u32::try_from(seconds).ok(),
        Err(_) => {
            errors.push(format!(
                "Value '{}' at '{member}' failed to satisfy constraint: Member must be a number",
                text.chars().take(64).collect::<String>()
            ));
            None
        }
    }
}

fn validation_result(errors: Vec<String>) -> Result<(), AwsError> {
    if errors.is_empty() {
        return Ok(());
    }
    let count = errors.len();
    Err(AwsError::new(
        "ValidationError",
        format!(
            "{count} validation error{} detected: {}",
            if count == 1 { "" } else { "s" },
            errors.join("; ")
        ),
    ))
}

/// Credentials as an STS response carries them.
pub struct CredentialsOut<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: &'a str,
    /// ISO 8601, as STS writes it.
    pub expiration: String,
}

pub fn get_caller_identity_response(
    arn: &str,
    user_id: &str,
    account: &str,
    request_id: &str,
) -> String {
    envelope(
        "GetCallerIdentity",
        vec![
            Element::text("Arn", arn),
            Element::text("UserId", user_id),
            Element::text("Account", account),
        ],
        request_id,
    )
}

pub fn assume_role_response(
    credentials: &CredentialsOut<'_>,
    assumed_role_arn: &str,
    assumed_role_id: &str,
    request_id: &str,
) -> String {
    envelope(
        "AssumeRole",
        vec![
            Element::new("AssumedRoleUser")
                .with_child(Element::text("AssumedRoleId", assumed_role_id))
                .with_child(Element::text("Arn", assumed_role_arn)),
            credentials_xml(credentials),
        ],
        request_id,
    )
}

pub fn get_session_token_response(credentials: &CredentialsOut<'_>, request_id: &str) -> String {
    envelope(
        "GetSessionToken",
        vec![credentials_xml(credentials)],
        request_id,
    )
}

fn credentials_xml(credentials: &CredentialsOut<'_>) -> Element {
    Element::new("Credentials")
        .with_child(Element::text("AccessKeyId", credentials.access_key_id))
        .with_child(Element::text(
            "SecretAccessKey",
            credentials.secret_access_key,
        ))
        .with_child(Element::text("SessionToken", credentials.session_token))
        .with_child(Element::text("Expiration", &credentials.expiration))
}

fn envelope(operation: &str, result: Vec<Element>, request_id: &str) -> String {
    let mut result_element = Element::new(format!("{operation}Result"));
    result_element.children = result;
    Element::new(format!("{operation}Response"))
        .with_child(result_element)
        .with_child(
            Element::new("ResponseMetadata").with_child(Element::text("RequestId", request_id)),
        )
        .to_document(Some(NAMESPACE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn parses_the_served_operations() {
        assert_eq!(
            parse(&pairs(&[
                ("Action", "GetCallerIdentity"),
                ("Version", API_VERSION)
            ]))
            .unwrap(),
            StsRequest::GetCallerIdentity
        );
        assert_eq!(
            parse(&pairs(&[
                ("Action", "AssumeRole"),
                ("RoleArn", "arn:aws:iam::111122223333:role/deployer"),
                ("RoleSessionName", "ci-7"),
                ("DurationSeconds", "900"),
            ]))
            .unwrap(),
            StsRequest::AssumeRole(AssumeRoleRequest {
                role_arn: "arn:aws:iam::111122223333:role/deployer".into(),
                role_session_name: "ci-7".into(),
                duration_seconds: Some(900),
            })
        );
        assert_eq!(
            parse(&pairs(&[("Action", "GetSessionToken")])).unwrap(),
            StsRequest::GetSessionToken {
                duration_seconds: 43_200
            }
        );
    }

    #[test]
    fn invalid_input_gets_aws_validation_errors() {
        let error = parse(&pairs(&[
            ("Action", "AssumeRole"),
            ("RoleSessionName", "a b"),
        ]))
        .unwrap_err();
        assert_eq!(error.code, "ValidationError");
        assert!(
            error
                .message
                .starts_with("2 validation errors detected: Value null at 'roleArn'"),
            "{}",
            error.message
        );
        assert!(error.message.contains("regular expression pattern"));
        let error = parse(&pairs(&[
            ("Action", "GetSessionToken"),
            ("DurationSeconds", "60"),
        ]))
        .unwrap_err();
        assert_eq!(
            error.message,
            "1 validation error detected: Value '60' at 'durationSeconds' failed to satisfy constraint: \
             Member must have value greater than or equal to 900"
        );
        assert_eq!(
            parse(&pairs(&[("Action", "Nope")])).unwrap_err().code,
            "InvalidAction"
        );
        assert_eq!(
            parse(&pairs(&[("Action", "GetFederationToken")]))
                .unwrap_err()
                .code,
            "InvalidAction"
        );
        assert_eq!(parse(&[]).unwrap_err().code, "MissingAction");
    }

    #[test]
    fn responses_escape_what_they_carry() {
        let body = get_caller_identity_response("arn:<x>", "AIDA&", "111122223333", "r-1");
        assert!(body.contains("<Arn>arn:&lt;x&gt;</Arn><UserId>AIDA&amp;</UserId>"));
        assert!(body.contains(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        ));
        let parsed = Element::parse(&body).unwrap();
        assert_eq!(parsed.find("Arn").unwrap().text, "arn:<x>");
        assert_eq!(parsed.find("RequestId").unwrap().text, "r-1");
    }
}
