//! STS, which Cairn serves itself: how its answers are recorded. The secret access key is
//! never recorded; the session token is hidden; the expiry is written in the form
//! CloudTrail's STS events use ("Nov 21, 2026, 6:00:00 PM"); AssumeRole's role is its
//! resource.

use cairn_model::format_recorded_date;
use serde_json::{json, Value};

use super::{RecordResource, HIDDEN};

/// Temporary credentials as an STS record carries them: never the secret.
pub fn recorded_credentials(access_key_id: &str, expiration_millis: i64) -> Value {
    json!({
        "accessKeyId": access_key_id,
        "sessionToken": HIDDEN,
        "expiration": format_recorded_date(expiration_millis),
    })
}

/// The role an AssumeRole call assumed, as its record's resource.
pub fn assumed_role(role_arn: String, account_id: String) -> RecordResource {
    RecordResource {
        arn: role_arn,
        account_id: Some(account_id),
        resource_type: "AWS::IAM::Role".to_owned(),
        arn_is_prefix: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_recorded_without_their_secret_and_token() {
        let recorded = recorded_credentials("ASIAEXAMPLE", 0);
        assert_eq!(recorded["sessionToken"], HIDDEN);
        assert_eq!(recorded["accessKeyId"], "ASIAEXAMPLE");
        assert_eq!(recorded.as_object().unwrap().len(), 3);
    }
}
