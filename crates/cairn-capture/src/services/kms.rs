//! KMS (KMS developer guide, "Logging AWS KMS API calls with AWS CloudTrail"): plaintext
//! and ciphertext never reach a record; cryptographic calls are reads whose answers are
//! never recorded, and Decrypt always names its algorithm; key-management calls carry the
//! key ARN as `responseElements.keyId` even when the API answers nothing; the key a call
//! names, by ID or ARN (an alias alone names none), is its resource.

use serde_json::{json, Map, Value};

use super::{member, push_resource, CapturedCall, Redaction, ServiceRules};

pub struct Kms;

impl ServiceRules for Kms {
    fn id(&self) -> &'static str {
        "kms"
    }

    fn redactions(&self) -> &'static [(&'static str, Redaction)] {
        &[
            ("plaintext", Redaction::Omit),
            ("ciphertextBlob", Redaction::Omit),
        ]
    }

    fn hides_response(&self, operation: &str) -> bool {
        KMS_CRYPTOGRAPHIC.contains(&operation) || operation == "GetKeyPolicy"
    }

    fn record(&self, call: &mut CapturedCall) {
        record_key(call);
    }
}

const KMS_CRYPTOGRAPHIC: &[&str] = &[
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateRandom",
    "GenerateMac",
    "VerifyMac",
    "Sign",
    "Verify",
    "DeriveSharedSecret",
];

/// Key-management calls whose record carries the key ARN as `responseElements.keyId`, even
/// when the API returns nothing.
const KMS_KEY_MANAGEMENT: &[&str] = &[
    "EnableKey",
    "DisableKey",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "EnableKeyRotation",
    "DisableKeyRotation",
    "RotateKeyOnDemand",
    "PutKeyPolicy",
    "UpdateKeyDescription",
    "TagResource",
    "UntagResource",
    "ImportKeyMaterial",
    "DeleteImportedKeyMaterial",
    "UpdatePrimaryRegion",
];

fn record_key(call: &mut CapturedCall) {
    let operation = call.operation.as_str();
    let cryptographic = KMS_CRYPTOGRAPHIC.contains(&operation);
    if cryptographic {
        // Cryptographic calls change nothing and their output is never recorded.
        call.read_only = true;
        call.response_elements = None;
    }
    if operation == "Decrypt" {
        // Decrypt's record always names the algorithm, even when the caller did not.
        let parameters = call
            .request_parameters
            .get_or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(parameters) = parameters {
            parameters
                .entry("encryptionAlgorithm")
                .or_insert_with(|| json!("SYMMETRIC_DEFAULT"));
        }
    }
    let requested = member(call.request_parameters.as_ref(), "keyId")
        .or_else(|| member(call.request_parameters.as_ref(), "destinationKeyId"));
    let answered = member(call.upstream_response.as_ref(), "keyId").or_else(|| {
        call.upstream_response
            .as_ref()
            .and_then(|response| response.get("keyMetadata"))
            .and_then(|metadata| metadata.get("arn"))
            .and_then(Value::as_str)
    });
    let key_arn = [requested, answered]
        .into_iter()
        .flatten()
        .find(|key| key.starts_with("arn:"))
        .map(str::to_owned)
        .or_else(|| {
            requested
                .filter(|key| !key.starts_with("alias/"))
                .map(|key| format!("arn:aws:kms:{}:{}:key/{key}", call.region, call.account_id))
        });
    let Some(key_arn) = key_arn.filter(|arn| arn.contains(":key/")) else {
        return;
    };
    if call.succeeded && KMS_KEY_MANAGEMENT.contains(&operation) {
        let mut elements = match call.response_elements.take() {
            Some(Value::Object(members)) => members,
            _ => Map::new(),
        };
        elements
            .entry("keyId")
            .or_insert_with(|| json!(key_arn.clone()));
        call.response_elements = Some(Value::Object(elements));
    }
    push_resource(call, key_arn, "AWS::KMS::Key");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::services::{apply, test_call, RecordResource};

    #[test]
    fn kms_key_management_records_the_key_arn() {
        let mut disable = test_call("kms", "DisableKey", json!({"keyId": "1234abcd"}), None);
        apply(&mut disable);
        let arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd";
        assert_eq!(disable.response_elements, Some(json!({"keyId": arn})));
        assert_eq!(
            disable.resources,
            [RecordResource {
                arn: arn.into(),
                account_id: Some("111122223333".into()),
                resource_type: "AWS::KMS::Key".into(),
                arn_is_prefix: false,
            }]
        );
        let mut failed = test_call("kms", "DisableKey", json!({"keyId": "1234abcd"}), None);
        failed.succeeded = false;
        apply(&mut failed);
        assert_eq!(failed.response_elements, None);
        assert_eq!(failed.resources.len(), 1);
    }

    #[test]
    fn kms_cryptographic_calls_are_reads_with_no_response() {
        let other_account = "arn:aws:kms:eu-west-1:999988887777:key/k";
        let mut decrypt = test_call(
            "kms",
            "Decrypt",
            json!({}),
            Some(json!({"keyId": other_account, "encryptionAlgorithm": "SYMMETRIC_DEFAULT"})),
        );
        decrypt.request_parameters = None;
        apply(&mut decrypt);
        assert!(decrypt.read_only);
        assert_eq!(decrypt.response_elements, None);
        assert_eq!(
            decrypt.request_parameters,
            Some(json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}))
        );
        assert_eq!(decrypt.resources[0].arn, other_account);
        assert_eq!(
            decrypt.resources[0].account_id.as_deref(),
            Some("999988887777")
        );
        let mut by_alias = test_call("kms", "Encrypt", json!({"keyId": "alias/app"}), None);
        apply(&mut by_alias);
        assert!(by_alias.resources.is_empty(), "an alias alone names no key");
    }
}
