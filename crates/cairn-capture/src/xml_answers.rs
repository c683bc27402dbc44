//! A query-protocol service's answer (IAM, RDS, CloudFormation, SNS, ...) as CloudTrail
//! records it in `responseElements`. The answer is XML: `<CreateUserResponse>` holds a
//! `<CreateUserResult>` (absent when the operation returns nothing, and then so is the
//! record's) and `<ResponseMetadata>`, which the record leaves out. The result becomes JSON
//! with member names lower-camel-cased (`<UserName>` → `userName`), `<member>` lists as
//! arrays, `<entry>` key/value lists as maps, and the numbers, booleans and timestamps the
//! model types (`data/map-shapes.json`) as numbers, booleans and CloudTrail's dates; any other
//! value stays the text it was (IAM's policy documents stay URL-encoded, as AWS logs them).

use cairn_model::{format_legacy_recorded_date, format_recorded_date, parse_event_time};
use cairn_wire::xml::Element;
use serde_json::{Map, Value};

use crate::map_shapes::{Shape, ShapeRef};
use crate::naming::{self, lower_camel_name};

/// Bigger answers are not parsed: CloudTrail leaves out `responseElements` over 100 KB anyway.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// `operation`'s answer `body` as `responseElements`; `None` when it holds no result or is not
/// XML.
pub fn query_response_elements(
    service_id: &str,
    operation: &str,
    body: &[u8],
    shape: Option<ShapeRef<'_>>,
) -> Option<Value> {
    let document = Element::parse(answer_text(body)?).ok()?;
    let result = document.child(&format!("{operation}Result"))?;
    let dates = if service_id == "iam" {
        DateStyle::Legacy
    } else {
        DateStyle::Current
    };
    Some(element_value(result, shape, dates)).filter(Value::is_object)
}

/// An ec2 answer `body` as `responseElements`. EC2's records keep the answer's own element
/// names (`requestId` included), write a list as `{"items": [...]}` (`{}` when empty) and a
/// timestamp as epoch milliseconds, and rename `return` to `_return` (real RunInstances,
/// StopInstances and ModifyInstanceAttribute records). Newer operations are recorded in
/// another form (`{"DeleteFlowLogsResponse": {...}}`) that nothing in the model tells
/// apart; they get this one too.
pub fn ec2_response_elements(body: &[u8], shape: Option<ShapeRef<'_>>) -> Option<Value> {
    let document = Element::parse(answer_text(body)?).ok()?;
    Some(ec2_value(&document, shape)).filter(Value::is_object)
}

/// The answer as text, unless it is too big to parse or not UTF-8. (An empty result is left
/// out by `response_elements`, like any empty answer.)
fn answer_text(body: &[u8]) -> Option<&str> {
    if body.len() > MAX_ANSWER_BYTES {
        return None;
    }
    std::str::from_utf8(body).ok()
}

fn ec2_value(node: &Element, shape: Option<ShapeRef<'_>>) -> Value {
    let kind = shape.and_then(|shape| shape.shape());
    let children = &node.children;
    let is_list = matches!(kind, Some(Shape::List(_)))
        || (kind.is_none()
            && !children.is_empty()
            && children.iter().all(|child| child.name == "item"));
    if is_list {
        if children.is_empty() {
            return Value::Object(Map::new());
        }
        let item = match kind {
            Some(Shape::List(item)) => shape.map(|shape| shape.at(*item)),
            _ => None,
        };
        let items = children
            .iter()
            .map(|child| ec2_value(child, item))
            .collect();
        return serde_json::json!({ "items": Value::Array(items) });
    }
    if children.is_empty() {
        let text = node.text.trim().to_owned();
        return match kind {
            Some(Shape::Structure(_)) => Value::Object(Map::new()),
            _ => typed_text(text, kind, DateStyle::EpochMillis),
        };
    }
    let members = match kind {
        Some(Shape::Structure(members)) => Some(members),
        _ => None,
    };
    let mut object = Map::new();
    for child in children {
        let name = child.name.as_str();
        let member = member_shape(members, shape, name);
        if name == "return" {
            // EC2's `return` is always its boolean "done", model or not (many operations
            // have no output shape at all).
            let done = child.text.trim().to_owned();
            let done = typed_text(done, Some(&Shape::Boolean), DateStyle::EpochMillis);
            object.insert("_return".to_owned(), done);
            continue;
        }
        object.insert(name.to_owned(), ec2_value(child, member));
    }
    Value::Object(object)
}

/// The shape of the member `name` of a structure whose `members` are known.
fn member_shape<'a>(
    members: Option<&std::collections::HashMap<String, u32>>,
    shape: Option<ShapeRef<'a>>,
    name: &str,
) -> Option<ShapeRef<'a>> {
    let index = members?.get(name)?;
    Some(shape?.at(*index))
}

/// How a service's records spell dates: IAM's as "Aug 1, 2024 1:33:28 PM", STS's and the
/// JSON services' as "Aug 1, 2024, 1:33:28 PM", EC2's as epoch milliseconds (all seen in
/// real records).
#[derive(Clone, Copy)]
enum DateStyle {
    Legacy,
    Current,
    EpochMillis,
}

fn element_value(node: &Element, shape: Option<ShapeRef<'_>>, dates: DateStyle) -> Value {
    let kind = shape.and_then(|shape| shape.shape());
    let children = &node.children;
    if children.is_empty() {
        let text = node.text.trim().to_owned();
        return match kind {
            Some(Shape::List(_)) => Value::Array(Vec::new()),
            _ => typed_text(text, kind, dates),
        };
    }
    let all_named = |name: &str| children.iter().all(|child| child.name == name);
    if let Some(Shape::List(item)) = kind {
        let item = shape.map(|shape| shape.at(*item));
        return Value::Array(
            children
                .iter()
                .map(|child| element_value(child, item, dates))
                .collect(),
        );
    }
    if kind.is_none() && all_named("member") {
        return Value::Array(
            children
                .iter()
                .map(|child| element_value(child, None, dates))
                .collect(),
        );
    }
    if all_named("entry") {
        if let Some(map) = entries(children, shape, dates) {
            return map;
        }
    }
    let members = match kind {
        Some(Shape::Structure(members)) => Some(members),
        _ => None,
    };
    // A flattened list repeats its element: the repeats are one list.
    let mut grouped: Vec<(&str, Vec<Value>)> = Vec::new();
    for child in children {
        let name = child.name.as_str();
        let value = element_value(child, member_shape(members, shape, name), dates);
        match grouped.iter_mut().find(|(seen, _)| *seen == name) {
            Some((_, values)) => values.push(value),
            None => grouped.push((name, vec![value])),
        }
    }
    Value::Object(
        grouped
            .into_iter()
            .map(|(name, mut values)| {
                let value = if values.len() == 1 {
                    values.remove(0)
                } else {
                    Value::Array(values)
                };
                (lower_camel_name(name), value)
            })
            .collect(),
    )
}

/// `<entry><key>k</key><value>v</value></entry>...` as `{k: v}`, keys as written.
fn entries(children: &[Element], shape: Option<ShapeRef<'_>>, dates: DateStyle) -> Option<Value> {
    let values = match shape.and_then(|shape| shape.shape()) {
        Some(Shape::Map(Some(values))) => shape.map(|shape| shape.at(*values)),
        _ => None,
    };
    let mut map = Map::new();
    for entry in children {
        let part = |name: &str| {
            entry
                .children
                .iter()
                .find(|child| child.name.eq_ignore_ascii_case(name))
        };
        let key = part("key")?.text.clone();
        let value = element_value(part("value")?, values, dates);
        map.insert(key, value);
    }
    Some(Value::Object(map))
}

/// A leaf's text as the model types it: timestamps in the service's date style, numbers and
/// booleans as a query input's are (`naming::typed_text`).
fn typed_text(text: String, kind: Option<&Shape>, dates: DateStyle) -> Value {
    let Some(Shape::Timestamp) = kind else {
        return naming::typed_text(text, kind);
    };
    match (parse_event_time(&text), dates) {
        (Ok(millis), DateStyle::Legacy) => Value::String(format_legacy_recorded_date(millis)),
        (Ok(millis), DateStyle::Current) => Value::String(format_recorded_date(millis)),
        (Ok(millis), DateStyle::EpochMillis) => Value::Number(millis.into()),
        (Err(_), _) => Value::String(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map_shapes::{End, MapShapes};
    use serde_json::json;

    fn answer(service: &str, operation: &str, xml: &str) -> Option<Value> {
        let shape = MapShapes::builtin().of(service, operation, End::Output);
        query_response_elements(service, operation, xml.as_bytes(), shape)
    }

    #[test]
    fn an_iam_user_is_recorded_as_cloudtrail_records_it() {
        let xml = r#"<CreateUserResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <CreateUserResult>
    <User>
      <Path>/</Path>
      <UserName>alice</UserName>
      <UserId>AIDAEXAMPLE</UserId>
      <Arn>arn:aws:iam::111122223333:user/alice</Arn>
      <CreateDate>2024-08-01T13:33:28Z</CreateDate>
      <Tags><member><Key>team</Key><Value>blue</Value></member></Tags>
    </User>
  </CreateUserResult>
  <ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>
</CreateUserResponse>"#;
        assert_eq!(
            answer("iam", "CreateUser", xml),
            Some(json!({"user": {
                "path": "/",
                "userName": "alice",
                "userId": "AIDAEXAMPLE",
                "arn": "arn:aws:iam::111122223333:user/alice",
                "createDate": "Aug 1, 2024 1:33:28 PM",
                "tags": [{"key": "team", "value": "blue"}]
            }}))
        );
    }

    #[test]
    fn numbers_booleans_and_one_item_lists_are_typed_by_the_model() {
        let xml = r#"<CreateLoginProfileResponse><CreateLoginProfileResult><LoginProfile>
  <UserName>bob</UserName><CreateDate>2024-08-01T13:42:21.000Z</CreateDate>
  <PasswordResetRequired>false</PasswordResetRequired>
</LoginProfile></CreateLoginProfileResult></CreateLoginProfileResponse>"#;
        assert_eq!(
            answer("iam", "CreateLoginProfile", xml),
            Some(json!({"loginProfile": {
                "userName": "bob",
                "createDate": "Aug 1, 2024 1:42:21 PM",
                "passwordResetRequired": false
            }}))
        );
        let xml = r#"<CreateRoleResponse><CreateRoleResult><Role>
  <RoleName>r</RoleName><MaxSessionDuration>3600</MaxSessionDuration>
  <Tags><member><Key>k</Key><Value>v</Value></member></Tags>
</Role></CreateRoleResult></CreateRoleResponse>"#;
        assert_eq!(
            answer("iam", "CreateRole", xml).unwrap()["role"],
            json!({"roleName": "r", "maxSessionDuration": 3600, "tags": [{"key": "k", "value": "v"}]})
        );
    }

    #[test]
    fn an_ec2_answer_keeps_its_element_names_with_lists_as_items() {
        let xml = r#"<RunInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>0f6b158f</requestId>
  <reservationId>r-0a33</reservationId>
  <ownerId>654654478122</ownerId>
  <groupSet/>
  <instancesSet>
    <item>
      <instanceId>i-047b</instanceId>
      <instanceState><code>0</code><name>pending</name></instanceState>
      <amiLaunchIndex>0</amiLaunchIndex>
      <productCodes/>
      <launchTime>2026-03-17T00:59:41.000Z</launchTime>
      <tagSet><item><key>team</key><value>blue</value></item></tagSet>
      <ebsOptimized>false</ebsOptimized>
    </item>
  </instancesSet>
</RunInstancesResponse>"#;
        let shape = MapShapes::builtin().of("ec2", "RunInstances", End::Output);
        assert_eq!(
            ec2_response_elements(xml.as_bytes(), shape),
            Some(json!({
                "requestId": "0f6b158f",
                "reservationId": "r-0a33",
                "ownerId": "654654478122",
                "groupSet": {},
                "instancesSet": {"items": [{
                    "instanceId": "i-047b",
                    "instanceState": {"code": 0, "name": "pending"},
                    "amiLaunchIndex": 0,
                    "productCodes": {},
                    "launchTime": 1773709181000_i64,
                    "tagSet": {"items": [{"key": "team", "value": "blue"}]},
                    "ebsOptimized": false
                }]}
            }))
        );
        let xml = r#"<ModifyInstanceAttributeResponse><requestId>5c0d</requestId><return>true</return></ModifyInstanceAttributeResponse>"#;
        let shape = MapShapes::builtin().of("ec2", "ModifyInstanceAttribute", End::Output);
        assert_eq!(
            ec2_response_elements(xml.as_bytes(), shape),
            Some(json!({"requestId": "5c0d", "_return": true}))
        );
    }

    #[test]
    fn an_answer_without_a_result_or_not_xml_records_nothing() {
        let xml = r#"<DeleteUserResponse><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DeleteUserResponse>"#;
        assert_eq!(answer("iam", "DeleteUser", xml), None);
        assert_eq!(answer("iam", "CreateUser", "not xml <"), None);
        assert_eq!(answer("iam", "CreateUser", "<CreateUserResponse/>"), None);
    }

    #[test]
    fn other_services_use_the_current_date_form_and_entries_become_maps() {
        let xml = r#"<CreateTopicResponse><CreateTopicResult>
  <TopicArn>arn:aws:sns:us-east-1:111122223333:t</TopicArn>
</CreateTopicResult></CreateTopicResponse>"#;
        assert_eq!(
            answer("sns", "CreateTopic", xml),
            Some(json!({"topicArn": "arn:aws:sns:us-east-1:111122223333:t"}))
        );
        let xml = r#"<XResponse><XResult><Attributes>
  <entry><key>Policy</key><value>p</value></entry>
  <entry><key>Owner</key><value>1</value></entry>
</Attributes><When>2024-08-01T13:33:28Z</When></XResult></XResponse>"#;
        let shape = None;
        assert_eq!(
            query_response_elements("sns", "X", xml.as_bytes(), shape),
            Some(
                json!({"attributes": {"Policy": "p", "Owner": "1"}, "when": "2024-08-01T13:33:28Z"})
            ),
            "without a model, text stays text"
        );
    }
}
