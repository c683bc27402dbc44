//! EC2: the instances RunInstances launched are its resources; user data, a new key pair's
//! private key and VPN pre-shared keys never reach a record; errors are recorded with who
//! was at fault (`Client.UnauthorizedOperation`, `Server.InternalError`), as real records
//! show. Its answers become `responseElements` in EC2's own form (`xml_answers`).

use serde_json::Value;

use super::{push_resource, CapturedCall, Redaction, ServiceRules};

pub struct Ec2;

impl ServiceRules for Ec2 {
    fn id(&self) -> &'static str {
        "ec2"
    }

    fn error_code(&self, code: &str, status: u16) -> Option<String> {
        let fault = if status >= 500 { "Server" } else { "Client" };
        Some(format!("{fault}.{code}"))
    }

    fn redactions(&self) -> &'static [(&'static str, Redaction)] {
        &[
            // EC2 keeps the member and drops its value (real RunInstances and
            // ModifyInstanceAttribute records); user data often carries credentials.
            ("userData", Redaction::Replace("<sensitiveDataRemoved>")),
            // A new key pair's private key, in CreateKeyPair's answer.
            ("keyMaterial", Redaction::Replace("<sensitiveDataRemoved>")),
            // VPN tunnels' pre-shared keys, asked for and answered (the customer gateway's
            // configuration holds them too).
            ("preSharedKey", Redaction::Hide),
            ("customerGatewayConfiguration", Redaction::Hide),
        ]
    }

    fn record(&self, call: &mut CapturedCall) {
        record_instances(call);
    }
}

/// RunInstances names the instances it launched (real records list each as an
/// `AWS::EC2::Instance`), read from its answer.
fn record_instances(call: &mut CapturedCall) {
    if call.operation != "RunInstances" || !call.succeeded {
        return;
    }
    let launched: Vec<String> = call
        .response_elements
        .as_ref()
        .and_then(|answer| answer.pointer("/instancesSet/items"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|instance| instance.get("instanceId")?.as_str())
        .map(|id| {
            format!(
                "arn:aws:ec2:{}:{}:instance/{id}",
                call.region, call.account_id
            )
        })
        .collect();
    for arn in launched {
        push_resource(call, arn, "AWS::EC2::Instance");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::services::{apply, test_call};

    #[test]
    fn run_instances_names_each_instance_it_launched() {
        let answer = json!({"instancesSet": {"items": [
            {"instanceId": "i-1"}, {"instanceId": "i-2"}
        ]}});
        let mut launched = test_call(
            "ec2",
            "RunInstances",
            json!({"imageId": "ami-1"}),
            Some(answer),
        );
        apply(&mut launched);
        let arns: Vec<&str> = launched.resources.iter().map(|r| r.arn.as_str()).collect();
        assert_eq!(
            arns,
            [
                "arn:aws:ec2:us-east-1:111122223333:instance/i-1",
                "arn:aws:ec2:us-east-1:111122223333:instance/i-2"
            ]
        );
        assert!(launched
            .resources
            .iter()
            .all(|r| r.resource_type == "AWS::EC2::Instance"));
        let mut refused = test_call("ec2", "RunInstances", json!({"imageId": "ami-1"}), None);
        refused.succeeded = false;
        apply(&mut refused);
        assert!(refused.resources.is_empty());
    }
}
