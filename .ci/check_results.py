"""Judge one CI line's test results: every integration test ran, and none was skipped unless allowed.

    python .ci/check_results.py --junit FILE --line 3.6.0 [--version 3.6.0]

Reads the JUnit XML pytest wrote (PYTEST_ADDOPTS=--junitxml=FILE), prints passed / skipped (with the
reason) / failed, and exits 1 when a test failed, when one was skipped without an entry for this line
in .ci/allowed-skips.toml, when fewer integration tests ran than pytest collects, or when the suite
ran on another OpenSearch version than the line's (the session fixture records it).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def node_id(case: ET.Element) -> str:
    *package, module = case.get("classname", "").split(".")
    return f"{'/'.join(package)}/{module}.py::{case.get('name')}" if package else f"{module}::{case.get('name')}"


def collected_integration(paths: list[str]) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "integration", *paths],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTEST_ADDOPTS": ""},
    )
    return {line.strip() for line in out.stdout.splitlines() if "::" in line}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--junit", type=Path, required=True)
    parser.add_argument("--line", required=True, help="the line's name in allowed-skips.toml")
    parser.add_argument("--version", help="the OpenSearch version the suite must have run on")
    parser.add_argument("--tests", nargs="*", default=["tests/integration"], help="what the line ran")
    args = parser.parse_args()

    allowed = tomllib.loads((ROOT / ".ci" / "allowed-skips.toml").read_text())["skip"]
    root = ET.parse(args.junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None, f"{args.junit} holds no test suite"
    properties = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}

    passed, skipped, failed = [], [], []
    for case in suite.iter("testcase"):
        test = node_id(case)
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(test)
        elif (skip := case.find("skipped")) is not None:
            skipped.append((test, skip.get("message", "")))
        else:
            passed.append(test)

    problems = []
    if args.version and properties.get("opensearch_version") != args.version:
        problems.append(f"the suite ran on OpenSearch {properties.get('opensearch_version')}, not {args.version}")
    for test, reason in skipped:
        ok = any(fnmatch.fnmatchcase(test, a["test"].replace("[", "[[]")) and args.line in a["lines"] for a in allowed)
        if not ok:
            problems.append(f"skipped but not allowed on line {args.line}: {test} ({reason})")
    ran = {t for t in passed + failed + [t for t, _ in skipped] if t.startswith("tests/integration/")}
    missing = collected_integration(args.tests) - ran
    if missing:
        problems.append(f"{len(missing)} collected integration test(s) did not run: {', '.join(sorted(missing)[:10])}")

    integration = sum(t.startswith("tests/integration/") for t in passed)
    print(f"== line {args.line} (OpenSearch {properties.get('opensearch_version', '?')}) ==")
    print(f"passed: {len(passed)} ({integration} integration)   skipped: {len(skipped)}   failed: {len(failed)}")
    for test, reason in skipped:
        print(f"  skipped {test}: {reason}")
    for test in failed:
        print(f"  FAILED  {test}")
    for case in suite.iter("testcase"):  # figures a test recorded (record_property), e.g. the fault counts
        for p in case.findall("properties/property"):
            print(f"  figure  {node_id(case)}: {p.get('name')} = {p.get('value')}")
    for problem in problems:
        print(f"  PROBLEM {problem}")
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
