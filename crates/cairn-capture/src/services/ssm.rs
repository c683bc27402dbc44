//! Systems Manager: parameter values never reach a record (`value` is hidden even for
//! plain strings, as real PutParameter records show), nor a command's parameters or a
//! session's data-channel token; GetParameter* answers are never recorded; documents,
//! commands, sessions, parameters and the instances they target are resources.

use serde_json::Value;

use super::{member, push_resource, strings, CapturedCall, Redaction, ServiceRules};

pub struct Ssm;

impl ServiceRules for Ssm {
    fn id(&self) -> &'static str {
        "ssm"
    }

    fn redactions(&self) -> &'static [(&'static str, Redaction)] {
        &[
            ("value", Redaction::Hide),
            // A command's or automation's parameters (real SendCommand records hide them, in
            // the request and in the command answered).
            ("parameters", Redaction::Hide),
            // A session's token opens its data channel (real StartSession records replace it
            // so).
            (
                "tokenValue",
                Redaction::Replace("Value hidden due to security reasons."),
            ),
        ]
    }

    fn hides_response(&self, operation: &str) -> bool {
        matches!(
            operation,
            "GetParameter" | "GetParameters" | "GetParametersByPath"
        )
    }

    fn record(&self, call: &mut CapturedCall) {
        record_resources(call);
    }
}

fn record_resources(call: &mut CapturedCall) {
    let region = call.region.clone();
    let account = call.account_id.clone();
    let arn = |kind: &str, name: &str| {
        if name.starts_with("arn:") {
            name.to_owned()
        } else {
            format!(
                "arn:aws:ssm:{region}:{account}:{kind}/{}",
                name.trim_start_matches('/')
            )
        }
    };
    let operation = call.operation.clone();
    let request = call.request_parameters.clone();
    let response = call.upstream_response.clone();
    let mut found: Vec<(String, &'static str)> = Vec::new();
    if operation.contains("Document") {
        if let Some(name) = member(request.as_ref(), "name") {
            found.push((arn("document", name), "AWS::SSM::Document"));
        }
    }
    if operation.contains("Parameter") {
        if let Some(name) = member(request.as_ref(), "name") {
            found.push((arn("parameter", name), "AWS::SSM::Parameter"));
        }
        for name in strings(request.as_ref(), "names") {
            found.push((arn("parameter", name), "AWS::SSM::Parameter"));
        }
    }
    if operation == "SendCommand" {
        if let Some(document) = member(request.as_ref(), "documentName") {
            found.push((arn("document", document), "AWS::SSM::Document"));
        }
        for instance in strings(request.as_ref(), "instanceIds") {
            found.push((
                format!("arn:aws:ec2:{region}:{account}:instance/{instance}"),
                "AWS::EC2::Instance",
            ));
        }
    }
    let command_id = member(request.as_ref(), "commandId").or_else(|| {
        response
            .as_ref()
            .and_then(|response| response.get("command"))
            .and_then(|command| command.get("commandId"))
            .and_then(Value::as_str)
    });
    if let Some(command) = command_id {
        found.push((arn("command", command), "AWS::SSM::Command"));
    }
    if operation.contains("Session") {
        if let Some(session) =
            member(request.as_ref(), "sessionId").or_else(|| member(response.as_ref(), "sessionId"))
        {
            found.push((arn("session", session), "AWS::SSM::Session"));
        }
        if operation == "StartSession" {
            if let Some(target) = member(request.as_ref(), "target") {
                found.push((
                    format!("arn:aws:ec2:{region}:{account}:instance/{target}"),
                    "AWS::EC2::Instance",
                ));
            }
        }
    }
    for (arn, resource_type) in found {
        push_resource(call, arn, resource_type);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::services::{apply, test_call};

    #[test]
    fn ssm_documents_commands_sessions_and_parameters_get_arns() {
        let mut delete = test_call("ssm", "DeleteDocument", json!({"name": "runbook"}), None);
        apply(&mut delete);
        assert_eq!(
            delete.resources[0].arn,
            "arn:aws:ssm:us-east-1:111122223333:document/runbook"
        );
        let mut send = test_call(
            "ssm",
            "SendCommand",
            json!({"documentName": "AWS-RunShellScript", "instanceIds": ["i-1"]}),
            Some(json!({"command": {"commandId": "c-9"}})),
        );
        apply(&mut send);
        let arns: Vec<&str> = send.resources.iter().map(|r| r.arn.as_str()).collect();
        assert_eq!(
            arns,
            [
                "arn:aws:ssm:us-east-1:111122223333:document/AWS-RunShellScript",
                "arn:aws:ec2:us-east-1:111122223333:instance/i-1",
                "arn:aws:ssm:us-east-1:111122223333:command/c-9"
            ]
        );
        let mut put = test_call(
            "ssm",
            "PutParameter",
            json!({"name": "/app/db", "value": "HIDDEN"}),
            None,
        );
        apply(&mut put);
        assert_eq!(
            put.resources[0].arn,
            "arn:aws:ssm:us-east-1:111122223333:parameter/app/db"
        );
        let mut session = test_call("ssm", "TerminateSession", json!({"sessionId": "s-1"}), None);
        apply(&mut session);
        assert_eq!(session.resources[0].resource_type, "AWS::SSM::Session");
    }
}
