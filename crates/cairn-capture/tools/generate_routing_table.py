#!/usr/bin/env python3
"""Generates data/routing-table.json from the service models botocore ships.

Run it after upgrading botocore; commit its output. One line per service, so a model change
shows as a readable diff. For each service (its newest API version) the table keeps only what
recognising a call needs: protocol, signing name, endpoint prefix (eventSource is
`<endpointPrefix>.amazonaws.com`), JSON target prefix, API version, and each operation's
name, HTTP method and request URI template.

    python3 crates/cairn-capture/tools/generate_routing_table.py
"""

import gzip
import json
import os
import pathlib
import sys

import botocore

OUT = pathlib.Path(__file__).resolve().parents[1] / "data" / "routing-table.json"


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


def main():
    root = pathlib.Path(botocore.__file__).parent / "data"
    lines = []
    for service_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        model_path = newest_model(service_dir)
        if model_path is None:
            continue
        model = load(model_path)
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
            "id": service_dir.name,
            "protocol": protocol,
            "signingName": metadata.get("signingName", metadata["endpointPrefix"]),
            "endpointPrefix": metadata["endpointPrefix"],
            "apiVersion": metadata.get("apiVersion", ""),
            "operations": operations,
        }
        if "targetPrefix" in metadata:
            entry["targetPrefix"] = metadata["targetPrefix"]
        lines.append(json.dumps(entry, separators=(",", ":"), sort_keys=True))
    header = json.dumps({"botocore": botocore.__version__, "services": len(lines)}, sort_keys=True)
    OUT.write_text(header + "\n" + "\n".join(lines) + "\n")
    print(f"wrote {OUT} ({len(lines)} services, botocore {botocore.__version__})", file=sys.stderr)


if __name__ == "__main__":
    main()
