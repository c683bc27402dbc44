//! Any JSON, query or ec2 request body becomes `requestParameters` or nothing, redacted,
//! never a panic.
#![no_main]

use cairn_capture::parameters::{request_parameters, CallInput};
use cairn_capture::Protocol;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let form = std::str::from_utf8(data)
        .map(cairn_wire::form::decode_pairs)
        .unwrap_or_default();
    for (protocol, service_id, operation) in [
        (Protocol::Json, "dynamodb", "BatchWriteItem"),
        (Protocol::Json, "kms", "Encrypt"),
        (Protocol::Json, "cognito-idp", "InitiateAuth"),
        (Protocol::RestJson, "lambda", "CreateFunction"),
        (Protocol::Query, "iam", "CreateLoginProfile"),
        (Protocol::Ec2, "ec2", "RunInstances"),
    ] {
        let input = CallInput {
            protocol: Some(protocol),
            service_id,
            operation,
            body: data,
            form: &form,
            query: &form,
            path_labels: &[],
        };
        let _ = request_parameters(&input, None);
    }
});
