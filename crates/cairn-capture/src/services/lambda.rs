//! Lambda: the function a call names is its resource, however the caller wrote it;
//! invocations are data events; function code and environment variables are left out
//! (its developer guide lists `ZipFile` and `Environment`; real records keep an empty
//! `environment`); and most control-plane calls are recorded under the API version that
//! introduced them (Lambda developer guide, "Logging Lambda API calls using CloudTrail",
//! which lists each; it says so of GetFunction without listing it). GetFunctionConfiguration,
//! GetPolicy, ListFunctions and ListVersionsByFunction are not in that list; their names
//! are the ones real records carry.

use super::{member, push_resource, CapturedCall, Redaction, ServiceRules};

pub struct Lambda;

impl ServiceRules for Lambda {
    fn id(&self) -> &'static str {
        "lambda"
    }

    fn renamed_operations(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("AddPermission", "AddPermission20150331v2"),
            ("CreateAlias", "CreateAlias20150331"),
            (
                "CreateEventSourceMapping",
                "CreateEventSourceMapping20150331",
            ),
            ("CreateFunction", "CreateFunction20150331"),
            ("DeleteAlias", "DeleteAlias20150331"),
            (
                "DeleteEventSourceMapping",
                "DeleteEventSourceMapping20150331",
            ),
            ("DeleteFunction", "DeleteFunction20150331"),
            (
                "DeleteFunctionConcurrency",
                "DeleteFunctionConcurrency20171031",
            ),
            ("GetAlias", "GetAlias20150331"),
            ("GetFunction", "GetFunction20150331v2"),
            (
                "GetFunctionConfiguration",
                "GetFunctionConfiguration20150331v2",
            ),
            ("GetPolicy", "GetPolicy20150331v2"),
            ("ListFunctions", "ListFunctions20150331"),
            ("ListVersionsByFunction", "ListVersionsByFunction20150331"),
            ("PublishLayerVersion", "PublishLayerVersion20181031"),
            ("PublishVersion", "PublishVersion20150331"),
            ("PutFunctionConcurrency", "PutFunctionConcurrency20171031"),
            ("RemovePermission", "RemovePermission20150331v2"),
            ("TagResource", "TagResource20170331v2"),
            ("UntagResource", "UntagResource20170331v2"),
            ("UpdateAlias", "UpdateAlias20150331"),
            (
                "UpdateEventSourceMapping",
                "UpdateEventSourceMapping20150331",
            ),
            ("UpdateFunctionCode", "UpdateFunctionCode20150331v2"),
            (
                "UpdateFunctionConfiguration",
                "UpdateFunctionConfiguration20150331v2",
            ),
        ]
    }

    fn is_data_event(&self, operation: &str) -> bool {
        operation == "Invoke" || operation == "InvokeWithResponseStream"
    }

    fn redactions(&self) -> &'static [(&'static str, Redaction)] {
        &[("zipFile", Redaction::Omit), ("variables", Redaction::Omit)]
    }

    fn record(&self, call: &mut CapturedCall) {
        record_function(call);
    }
}

/// Lambda names the function, however the caller wrote it: a name, `name:qualifier`, a
/// partial ARN (`account:function:name`) or a full ARN.
fn record_function(call: &mut CapturedCall) {
    let Some(function) = member(call.request_parameters.as_ref(), "functionName")
        .or_else(|| member(call.request_parameters.as_ref(), "resource"))
        .map(str::to_owned)
    else {
        return;
    };
    let arn = if function.starts_with("arn:") {
        function
    } else if function.split(':').nth(1) == Some("function") {
        format!("arn:aws:lambda:{}:{function}", call.region)
    } else {
        format!(
            "arn:aws:lambda:{}:{}:function:{function}",
            call.region, call.account_id
        )
    };
    if !arn.contains(":function:") {
        return;
    }
    push_resource(call, arn, "AWS::Lambda::Function");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::services::{apply, test_call};

    #[test]
    fn lambda_calls_name_their_function_however_it_was_written() {
        let cases = [
            (
                "my-function",
                "arn:aws:lambda:us-east-1:111122223333:function:my-function",
            ),
            (
                "my-function:prod",
                "arn:aws:lambda:us-east-1:111122223333:function:my-function:prod",
            ),
            (
                "444455556666:function:other",
                "arn:aws:lambda:us-east-1:444455556666:function:other",
            ),
            (
                "arn:aws:lambda:eu-west-1:444455556666:function:other",
                "arn:aws:lambda:eu-west-1:444455556666:function:other",
            ),
        ];
        for (written, arn) in cases {
            let mut invoke = test_call("lambda", "Invoke", json!({"functionName": written}), None);
            apply(&mut invoke);
            assert_eq!(invoke.resources.len(), 1, "{written}");
            assert_eq!(invoke.resources[0].arn, arn, "{written}");
            assert_eq!(invoke.resources[0].resource_type, "AWS::Lambda::Function");
        }
        let mut layer = test_call(
            "lambda",
            "GetLayerVersion",
            json!({"layerName": "arn:aws:lambda:us-east-1:111122223333:layer:x"}),
            None,
        );
        apply(&mut layer);
        assert!(layer.resources.is_empty());
    }
}
