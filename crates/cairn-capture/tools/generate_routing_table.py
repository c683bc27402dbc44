#!/usr/bin/env python3
"""Generates data/routing-table.json and data/map-shapes.json from the service models
botocore ships.

Run it after upgrading botocore; commit its output. One line per service, so a model change
shows as a readable diff. For each service (its newest API version) the table keeps only what
recognising a call needs: protocol, signing name, endpoint prefix (eventSource is
`<endpointPrefix>.amazonaws.com`), JSON target prefix, API version, and each operation's
name, HTTP method and request URI template.

map-shapes.json serves logging, not routing: CloudTrail lower-camel-cases member names but
keeps the keys of maps (tags, DynamoDB tables and attribute names) as the caller wrote them,
and only the model tells a map from a structure. For each JSON and rest-json service it keeps
the shapes from which a map can be reached (structures with those members, lists, maps),
numbered, and each operation's input and output shape among them. A query or ec2 request is
all text, so for those services it keeps instead the shapes from which a number or a boolean
can be reached, members named as the request spells them, so that CloudTrail's `"maxItems":
100` and `"dryRun": false` are logged as the numbers and booleans they are; for query
services the same goes for answers (members named as the XML spells them, timestamps kept
too), which become `responseElements`. For JSON 1.0/1.1
services it also keeps the shapes from which a timestamp can be reached: those send epoch
seconds, and CloudTrail records them as dates ("Aug 2, 2024, 8:23:24 AM").

    python3 crates/cairn-capture/tools/generate_routing_table.py          # write them
    python3 crates/cairn-capture/tools/generate_routing_table.py --check  # verify them

It also writes data/sensitive-members.json (the members each operation's model marks
sensitive, for redaction that fails closed), the operations AWS serves unsigned (`noAuth` in
the routing table), cairn-wire's data/cloudtrail-model.json (CloudTrail's own API), and
cairn-wire's src/cloudtrail_shapes.rs (Rust types of the served CloudTrail operations).
"""

import gzip
import json
import os
import pathlib
import sys

import botocore

OUT = pathlib.Path(__file__).resolve().parents[1] / "data" / "routing-table.json"
MAP_SHAPES_OUT = OUT.with_name("map-shapes.json")
SENSITIVE_OUT = OUT.with_name("sensitive-members.json")
CLOUDTRAIL_OUT = (pathlib.Path(__file__).resolve().parents[2] / "cairn-wire" / "data"
                  / "cloudtrail-model.json")
CLOUDTRAIL_SHAPES_OUT = CLOUDTRAIL_OUT.parents[1] / "src" / "cloudtrail_shapes.rs"

# The CloudTrail operations Cairn serves through typed requests (the trail API). A choice of
# Cairn's, not a fact of the model: every other operation of the model (Lake, channels,
# dashboards, ...) answers UnsupportedOperationException, and LookupEvents has its own edge.
CLOUDTRAIL_SERVED = [
    "AddTags", "CreateTrail", "DeleteTrail", "DescribeTrails", "GetEventSelectors",
    "GetInsightSelectors", "GetTrail", "GetTrailStatus", "ListPublicKeys", "ListTags",
    "ListTrails", "PutEventSelectors", "PutInsightSelectors", "RemoveTags", "StartLogging",
    "StopLogging", "UpdateTrail",
]


def load(path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        return json.load(handle)


def newest_model(service_dir):
    versions = sorted(p for p in service_dir.iterdir() if p.is_dir())
    for version in reversed(versions):
        for name in ("service-2.json.gz", "service-2.json"):
            if (version / name).exists():
                return version / name
    return None


def required_query_keys(shapes, operation):
    shape_name = operation.get("input", {}).get("shape")
    shape = shapes.get(shape_name, {}) if shape_name else {}
    keys = []
    for member_name in shape.get("required", []):
        member = shape.get("members", {}).get(member_name, {})
        if member.get("location") == "querystring":
            keys.append(member.get("locationName", member_name))
    return sorted(keys)


def required_header_names(shapes, operation):
    shape_name = operation.get("input", {}).get("shape")
    shape = shapes.get(shape_name, {}) if shape_name else {}
    names = []
    for member_name in shape.get("required", []):
        member = shape.get("members", {}).get(member_name, {})
        if member.get("location") == "header":
            names.append(member.get("locationName", member_name).lower())
    return sorted(names)


def route_key(shapes, operation):
    http = operation.get("http", {})
    return (http.get("method", "POST"), http.get("requestUri", "/"),
            tuple(required_query_keys(shapes, operation)))


def is_secondary(operation):
    static = operation.get("staticContextParams", {})
    if static.get("UseS3ExpressControlEndpoint", {}).get("value"):
        return True
    return bool(operation.get("endpoint", {}).get("hostPrefix"))


def service_models():
    """(service id, newest model) for every service botocore ships, in id order."""
    root = pathlib.Path(botocore.__file__).parent / "data"
    for service_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        model_path = newest_model(service_dir)
        if model_path is not None:
            yield service_dir.name, load(model_path)


def routing_table_text():
    lines = []
    for service_id, model in service_models():
        metadata = model["metadata"]
        protocol = metadata["protocol"]
        operations = []
        shapes = model.get("shapes", {})
        routes_seen = {}
        for operation in model["operations"].values():
            key = route_key(shapes, operation)
            routes_seen[key] = routes_seen.get(key, 0) + 1
        for name, operation in sorted(model["operations"].items()):
            http = operation.get("http", {})
            if protocol in ("rest-json", "rest-xml"):
                entry = [name, http.get("method", "POST"), http.get("requestUri", "/")]
                extra = {}
                required = required_query_keys(shapes, operation)
                if required:
                    # Operations sharing a URI template (S3 GetObject and ListParts) differ
                    # only by a required query-string member.
                    extra["requiredQuery"] = required
                headers = required_header_names(shapes, operation)
                if headers and routes_seen[route_key(shapes, operation)] > 1:
                    # Operations sharing method, URI and query (S3 PutObject and CopyObject,
                    # UploadPart and UploadPartCopy) differ by a required header.
                    extra["requiredHeaders"] = headers
                if is_secondary(operation):
                    # Served on another endpoint (S3 Express control, host prefixes); on a tie
                    # with an operation of the main endpoint, the main one wins.
                    extra["secondary"] = True
                if extra:
                    entry.append(extra)
                operations.append(entry)
            else:
                operations.append([name])
        entry = {
            "id": service_id,
            "protocol": protocol,
            "signingName": metadata.get("signingName", metadata["endpointPrefix"]),
            "endpointPrefix": metadata["endpointPrefix"],
            "apiVersion": metadata.get("apiVersion", ""),
            "operations": operations,
        }
        if "targetPrefix" in metadata:
            entry["targetPrefix"] = metadata["targetPrefix"]
        no_auth = sorted(name for name, operation in model["operations"].items()
                         if is_unauthenticated(operation))
        if no_auth:
            # AWS serves these without a signature (`authtype: none`, Smithy's `noAuth`).
            entry["noAuth"] = no_auth
        if service_id in ERRORS_BY_EXCEPTION_NAME:
            names = error_names(shapes)
            if names:
                entry["errorNames"] = names
        lines.append(json.dumps(entry, separators=(",", ":"), sort_keys=True))
    header = json.dumps({"botocore": botocore.__version__, "services": len(lines)}, sort_keys=True)
    return header + "\n" + "\n".join(lines) + "\n"


# Services whose records name an error by its exception (IAM's `NoSuchEntity` is recorded as
# `NoSuchEntityException`, as real records show); no other service's are known to.
ERRORS_BY_EXCEPTION_NAME = {"iam"}


def error_names(shapes):
    """Wire error code -> exception shape name, where the two differ."""
    names = {}
    for name, shape in shapes.items():
        if shape.get("exception") or "error" in shape:
            code = shape.get("error", {}).get("code", name)
            if code != name:
                names[code] = name
    return dict(sorted(names.items()))


def map_reaching_shapes(shapes):
    """The names of the shapes from which a map can be reached (a fixed point, so recursive
    shapes such as DynamoDB's AttributeValue are handled)."""
    reaching = {name for name, shape in shapes.items() if shape["type"] == "map"}
    return reaching_closure(shapes, reaching)


def reaching_closure(shapes, reaching):
    """`reaching` grown by every list and structure from which one of them can be reached
    (a fixed point, so recursive shapes are handled)."""
    changed = True
    while changed:
        changed = False
        for name, shape in shapes.items():
            if name in reaching:
                continue
            if shape["type"] == "list":
                children = [shape["member"]["shape"]]
            elif shape["type"] == "structure":
                children = [member["shape"] for member in shape.get("members", {}).values()]
            else:
                continue
            if any(child in reaching for child in children):
                reaching.add(name)
                changed = True
    return reaching


def timestamp_reaching_shapes(shapes):
    """The names of the shapes from which a timestamp can be reached."""
    reaching = {name for name, shape in shapes.items() if shape["type"] == "timestamp"}
    return reaching_closure(shapes, reaching)


def typed_reaching_shapes(shapes):
    """The names of the shapes from which a number or a boolean can be reached."""
    reaching = {name for name, shape in shapes.items() if shape["type"] in TYPED_SCALARS}
    return reaching_closure(shapes, reaching)


def body_shape(shapes, shape_name):
    """The shape a JSON body holds: the input itself, or its structure payload member."""
    shape = shapes[shape_name]
    payload = shape.get("payload")
    if payload:
        member = shape["members"][payload]["shape"]
        return member if shapes[member]["type"] == "structure" else None
    return shape_name


# The operations recorded without responseElements (Cairn's `is_read_only`).
READ_PREFIXES = ("Get", "Describe", "List", "Head", "Lookup", "Search", "Scan", "Query", "BatchGet",
                 "Select")

TYPED_SCALARS = {"integer": "number", "long": "number", "float": "number", "double": "number",
                 "boolean": "boolean"}


def query_wire_name(protocol, member_name, member):
    """The name a query or ec2 request spells a member with."""
    if protocol == "ec2":
        if "queryName" in member:
            return member["queryName"]
        location = member.get("locationName")
        return location[0].upper() + location[1:] if location else member_name
    return member.get("locationName", member_name)


def shape_numberer(shapes, table, reaching, member_key, keep_map_values):
    """A function that appends a shape (and what it reaches) to `table` once and returns its
    index: typed scalars and timestamps as tags, lists and maps with their items' index,
    structures as their `reaching` members keyed by `member_key(name, member)`."""
    numbered = {}

    def number(name):
        if name in numbered:
            return numbered[name]
        numbered[name] = len(table)
        table.append(None)
        shape = shapes[name]
        if shape["type"] in TYPED_SCALARS:
            entry = [TYPED_SCALARS[shape["type"]]]
        elif shape["type"] == "timestamp":
            entry = ["timestamp"]
        elif shape["type"] == "map":
            value = shape["value"]["shape"]
            entry = ["map", number(value)] if value in reaching and keep_map_values else ["map"]
        elif shape["type"] == "list":
            entry = ["list", number(shape["member"]["shape"])]
        else:
            entry = {
                member_key(member_name, member): number(member["shape"])
                for member_name, member in sorted(shape.get("members", {}).items())
                if member["shape"] in reaching and "location" not in member
            }
        table[numbered[name]] = entry
        return numbered[name]

    return number


def map_shapes_line(service_id, model):
    protocol = model["metadata"]["protocol"]
    is_query = protocol in ("query", "ec2")
    shapes = model.get("shapes", {})
    # JSON carries its own numbers and booleans, not its maps; a query string is all text,
    # so for query and ec2 the typed scalars are what matter (maps there are spelled out).
    reaching = typed_reaching_shapes(shapes) if is_query else map_reaching_shapes(shapes)
    if protocol == "query":
        # A query answer is XML, all text: its numbers, booleans and timestamps are typed
        # from the model when it becomes `responseElements`.
        reaching |= timestamp_reaching_shapes(shapes)
    if protocol == "json":
        # JSON 1.0/1.1 send timestamps as epoch seconds; CloudTrail records them as dates.
        # rest-json records keep what the service sent (ISO 8601 where it sends that).
        reaching |= timestamp_reaching_shapes(shapes)
    table = []

    def request_member_key(member_name, member):
        if is_query:
            return query_wire_name(protocol, member_name, member)
        return member.get("jsonName", member_name)

    number = shape_numberer(shapes, table, reaching, request_member_key,
                            keep_map_values=not is_query)

    # An ec2 answer is XML whose element names are the members' location names; CloudTrail
    # records it nearly as it is (lists as `{"items": [...]}`, so every list is kept), for
    # calls that change something only.
    answer_reaching = reaching_closure(
        shapes,
        {name for name, shape in shapes.items()
         if shape["type"] in TYPED_SCALARS or shape["type"] in ("timestamp", "list")})
    number_answer = shape_numberer(
        shapes, table, answer_reaching,
        lambda member_name, member: member.get("locationName", member_name),
        keep_map_values=False)

    operations = {}
    for name, operation in sorted(model["operations"].items()):
        ends = []
        for end in ("input", "output"):
            shape_name = operation.get(end, {}).get("shape")
            shape_name = body_shape(shapes, shape_name) if shape_name else None
            if end == "output" and protocol == "ec2":
                changes = not name.startswith(READ_PREFIXES)
                ends.append(number_answer(shape_name)
                            if changes and shape_name in answer_reaching else None)
            else:
                ends.append(number(shape_name) if shape_name in reaching else None)
        if ends != [None, None]:
            operations[name] = ends
    if not operations:
        return None
    return json.dumps({"id": service_id, "operations": operations, "shapes": table},
                      separators=(",", ":"), sort_keys=True)


def map_shapes_lines():
    lines = []
    for service_id, model in service_models():
        if model["metadata"]["protocol"] not in ("json", "rest-json", "query", "ec2"):
            continue
        line = map_shapes_line(service_id, model)
        if line:
            lines.append(line)
    return lines


def map_shapes_text():
    lines = map_shapes_lines()
    header = json.dumps({"botocore": botocore.__version__, "services": len(lines)}, sort_keys=True)
    return header + "\n" + "\n".join(lines) + "\n"


def is_unauthenticated(operation):
    return operation.get("authtype") == "none" or "smithy.api#noAuth" in (operation.get("auth") or [])


def wholly_sensitive(shapes, shape_name, seen=None):
    """Whether every value of `shape_name` is secret: the shape is marked sensitive, or it is
    a list of sensitive members or a map whose keys or values are sensitive (at any depth of
    nesting). A member of such a shape is hidden as a whole, as a marked member is."""
    seen = set() if seen is None else seen
    if shape_name is None or shape_name in seen:
        return False
    seen.add(shape_name)
    shape = shapes.get(shape_name, {})
    if shape.get("sensitive"):
        return True
    kind = shape.get("type")
    if kind == "list":
        parts = [shape.get("member", {})]
    elif kind == "map":
        parts = [shape.get("key", {}), shape.get("value", {})]
    else:
        return False
    return any(part.get("sensitive") or wholly_sensitive(shapes, part.get("shape"), seen)
               for part in parts)


def sensitive_names(shapes, shape_name, seen=None):
    """The names (as the wire spells them: member name and locationName) of the members that
    the model marks sensitive, on the member or its shape, anywhere below `shape_name`. A
    sensitive member is not looked into: all of it is hidden."""
    seen = set() if seen is None else seen
    if shape_name is None or shape_name in seen:
        return set()
    seen.add(shape_name)
    shape = shapes.get(shape_name, {})
    names = set()
    kind = shape.get("type")
    if kind == "structure":
        for member_name, member in shape.get("members", {}).items():
            target = member.get("shape")
            if member.get("sensitive") or wholly_sensitive(shapes, target):
                names.add(member_name)
                if member.get("locationName"):
                    names.add(member["locationName"])
            else:
                names |= sensitive_names(shapes, target, seen)
    elif kind == "list":
        names |= sensitive_names(shapes, shape.get("member", {}).get("shape"), seen)
    elif kind == "map":
        names |= sensitive_names(shapes, shape.get("value", {}).get("shape"), seen)
    return names


def sensitive_lines():
    """One line per service: for each operation, the sensitive member names of its input and
    its output, so that a secret the model marks is hidden even where no hand rule knows it."""
    lines = []
    for service_id, model in service_models():
        shapes = model.get("shapes", {})
        operations = {}
        for name, operation in sorted(model["operations"].items()):
            ends = {}
            for end in ("input", "output"):
                found = sensitive_names(shapes, operation.get(end, {}).get("shape"))
                if found:
                    ends[end] = sorted(found)
            if ends:
                operations[name] = ends
        if operations:
            lines.append(json.dumps({"id": service_id, "operations": operations},
                                    separators=(",", ":"), sort_keys=True))
    return lines


def sensitive_members_text():
    lines = sensitive_lines()
    header = json.dumps({"botocore": botocore.__version__, "services": len(lines)}, sort_keys=True)
    return header + "\n" + "\n".join(lines) + "\n"


def strip_documentation(value):
    """The model without its prose: what the wire needs, diffable and a tenth the size."""
    if isinstance(value, dict):
        return {key: strip_documentation(item) for key, item in value.items()
                if key not in ("documentation", "documentationUrl", "deprecatedMessage")}
    if isinstance(value, list):
        return [strip_documentation(item) for item in value]
    return value


def cloudtrail_model_text():
    """CloudTrail's own API, which Cairn serves: every operation (input, output, errors) and
    every shape, as the model has them, so requests are checked and answers shaped by the
    model and not by hand-kept tables. One line per operation and per shape."""
    for service_id, model in service_models():
        if service_id == "cloudtrail":
            break
    else:
        raise SystemExit("botocore has no cloudtrail model")
    model = strip_documentation(model)
    lines = [json.dumps({"botocore": botocore.__version__,
                         "apiVersion": model["metadata"]["apiVersion"],
                         "targetPrefix": model["metadata"]["targetPrefix"]}, sort_keys=True)]
    for name, operation in sorted(model["operations"].items()):
        lines.append(json.dumps({"operation": name, **operation}, separators=(",", ":"),
                                sort_keys=True))
    for name, shape in sorted(model["shapes"].items()):
        lines.append(json.dumps({"shape": name, **shape}, separators=(",", ":"), sort_keys=True))
    return "\n".join(lines) + "\n"


RUST_KEYWORDS = {"type", "match", "ref", "in", "for", "loop", "move", "self", "struct", "enum",
                 "fn", "mod", "use", "where", "impl", "trait", "crate", "super", "static", "const"}

RUST_SCALARS = {"string": "String", "blob": "String", "boolean": "bool", "integer": "i32",
                "long": "i64", "float": "f64", "double": "f64", "timestamp": "f64"}


def snake_case(name):
    """`S3BucketName` -> `s3_bucket_name`, `SnsTopicARN` -> `sns_topic_arn`, `trailList` ->
    `trail_list`."""
    out = []
    for index, char in enumerate(name):
        if char.isupper() and index > 0:
            before, after = name[index - 1], name[index + 1] if index + 1 < len(name) else ""
            if before.islower() or before.isdigit() or (before.isupper() and after.islower()):
                out.append("_")
        out.append(char.lower())
    field = "".join(out)
    return f"r#{field}" if field in RUST_KEYWORDS else field


def rust_type(shapes, name, structures):
    shape = shapes[name]
    kind = shape["type"]
    if kind == "structure":
        structures.append(name)
        return name
    if kind == "list":
        return f"Vec<{rust_type(shapes, shape['member']['shape'], structures)}>"
    if kind == "map":
        return f"std::collections::BTreeMap<String, {rust_type(shapes, shape['value']['shape'], structures)}>"
    return RUST_SCALARS[kind]


def cloudtrail_shapes_text():
    """Rust types for the served CloudTrail operations' requests and answers, and the enum
    of the requests Cairn serves: members named and typed as the model has them, so that no
    request is picked apart by hand and no answer carries a misspelt member. rustfmt-formatted,
    so that `cargo fmt --check` and this generator agree."""
    import subprocess
    for service_id, model in service_models():
        if service_id == "cloudtrail":
            break
    else:
        raise SystemExit("botocore has no cloudtrail model")
    shapes, operations = model["shapes"], model["operations"]
    pending, emitted, items = [], set(), []
    roots = []
    for name in CLOUDTRAIL_SERVED:
        operation = operations[name]
        for key in ("input", "output"):
            if key in operation:
                roots.append(operation[key]["shape"])
    pending.extend(roots)
    while pending:
        name = pending.pop(0)
        if name in emitted:
            continue
        emitted.add(name)
        shape = shapes[name]
        required = set(shape.get("required", []))
        fields = []
        for member, target in shape.get("members", {}).items():
            found = []
            kind = rust_type(shapes, target["shape"], found)
            pending.extend(found)
            if name in found:
                raise SystemExit(f"{name} contains itself: box it")
            attributes = f'rename = "{member}"'
            if member not in required:
                kind = f"Option<{kind}>"
                attributes += ', default, skip_serializing_if = "Option::is_none"'
            fields.append(f"    #[serde({attributes})]\n    pub {snake_case(member)}: {kind},")
        derive = "#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]"
        items.append(f"{derive}\npub struct {name} {{\n" + "\n".join(fields) + "\n}")
    variants = []
    parse_arms = []
    for name in CLOUDTRAIL_SERVED:
        input_shape = operations[name].get("input", {}).get("shape")
        if input_shape is None:
            raise SystemExit(f"{name} has no input")
        variants.append(f"    {name}({input_shape}),")
        parse_arms.append(f'        "{name}" => Self::{name}(serde_json::from_value(members)?),')
    served = ", ".join(f'"{name}"' for name in CLOUDTRAIL_SERVED)
    enum = f"""/// A request to one of the CloudTrail operations Cairn serves, its members typed.
// The variants are as large as their operations' inputs; a request is parsed once per call.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum TrailRequest {{
{chr(10).join(variants)}
}}

impl TrailRequest {{
    /// The operations with a variant, by their model names.
    pub const SERVED: &'static [&'static str] = &[{served}];

    /// `members` (a request body that passed the model's check) as `operation`'s request;
    /// `None` for an operation Cairn does not serve.
    pub fn parse(
        operation: &str,
        members: serde_json::Value,
    ) -> Option<Result<Self, serde_json::Error>> {{
        let parsed = (|| {{
            Ok(Some(match operation {{
{chr(10).join(parse_arms)}
                _ => return Ok(None),
            }}))
        }})();
        parsed.transpose()
    }}
}}"""
    header = (f"//! CloudTrail's served operations as Rust types, generated from botocore {botocore.__version__}'s\n"
              "//! model by `crates/cairn-capture/tools/generate_routing_table.py`: do not edit; regenerate.\n"
              "//! Members keep the model's names on the wire (`rename`) and its required/optional split.\n")
    text = header + "\n" + "\n\n".join(items) + "\n\n" + enum + "\n"
    formatted = subprocess.run(["rustfmt", "--edition", "2021", "--emit", "stdout"], input=text,
                               capture_output=True, text=True, check=True)
    return formatted.stdout


OUTPUTS = [
    (OUT, routing_table_text),
    (MAP_SHAPES_OUT, map_shapes_text),
    (SENSITIVE_OUT, sensitive_members_text),
    (CLOUDTRAIL_OUT, cloudtrail_model_text),
    (CLOUDTRAIL_SHAPES_OUT, cloudtrail_shapes_text),
]


def main(argv):
    """Writes every table; with --check, writes nothing and fails if a committed table is
    not what these botocore models make."""
    check = "--check" in argv
    stale = []
    for path, make in OUTPUTS:
        text = make()
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}", file=sys.stderr)
    if stale:
        print(f"botocore {botocore.__version__} makes other tables than the committed "
              f"{', '.join(str(path) for path in stale)}: run {sys.argv[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
