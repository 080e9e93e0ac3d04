#!/usr/bin/env python3
"""Counts test cases over the test targets of the last `bazel test`, from their test.xml files.

Prints each failed case, then the closing line "N passed, N failed". A target without a
test.xml (it did not build, or crashed before writing one) counts as one failed case.
Exit status: 0 if nothing failed.
"""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET


def main():
    root = subprocess.run(["bazel", "info", "bazel-testlogs"], capture_output=True, text=True,
                          check=True).stdout.strip()
    targets = subprocess.run(["bazel", "query", "tests(//...)", "--output=label"],
                             capture_output=True, text=True, check=True).stdout.split()
    passed = failed = 0
    for target in targets:
        package, name = target.lstrip("/").split(":")
        path = os.path.join(root, package, name, "test.xml")
        try:
            cases = ET.parse(path).getroot().iter("testcase")
        except (OSError, ET.ParseError):
            print(f"FAILED {target}: no test results (did it build?)")
            failed += 1
            continue
        for case in cases:
            if case.find("failure") is not None or case.find("error") is not None:
                print(f"FAILED {target}: {case.get('classname', '')}.{case.get('name', '')}")
                failed += 1
            elif case.get("result") != "suppressed" and case.get("status") != "notrun":
                passed += 1
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
