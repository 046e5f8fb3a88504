#!/usr/bin/env python3
"""Validates an OpenFaaS stack file against the keys faas-cli's stack format documents, so a
typo fails CI instead of being ignored at deploy time. Usage: check_stack.py [stack.yml]"""

import sys

import yaml

TOP = {"version", "provider", "functions", "configuration"}
PROVIDER = {"name", "gateway", "network"}
FUNCTION = {
    "lang", "handler", "image", "fprocess", "environment", "environment_file", "secrets",
    "labels", "annotations", "limits", "requests", "constraints", "readonly_root_filesystem",
    "build_args", "build_options", "namespace", "platforms", "skip_build",
}
RESOURCES = {"cpu", "memory"}
ROLES = {"emitter", "worker", "collector"}


def check(path):
    errors = []
    with open(path) as f:
        stack = yaml.safe_load(f)
    if not isinstance(stack, dict):
        return [f"{path}: not a mapping"]
    errors += [f"unknown top-level key {k!r}" for k in stack if k not in TOP]
    if str(stack.get("version")) != "1.0":
        errors.append("version must be 1.0")
    provider = stack.get("provider") or {}
    errors += [f"provider: unknown key {k!r}" for k in provider if k not in PROVIDER]
    if provider.get("name") != "openfaas":
        errors.append("provider.name must be openfaas")
    functions = stack.get("functions") or {}
    if not functions:
        errors.append("no functions")
    for name, fn in functions.items():
        where = f"functions.{name}"
        errors += [f"{where}: unknown key {k!r}" for k in fn if k not in FUNCTION]
        if not fn.get("image"):
            errors.append(f"{where}: image is required")
        for section in ("limits", "requests"):
            errors += [
                f"{where}.{section}: unknown key {k!r}"
                for k in (fn.get(section) or {})
                if k not in RESOURCES
            ]
        env = fn.get("environment") or {}
        for k, v in env.items():
            if not isinstance(v, str):
                errors.append(f"{where}.environment.{k}: must be a string (quote it)")
        for k, v in (fn.get("labels") or {}).items():
            if not isinstance(v, str):
                errors.append(f"{where}.labels.{k}: must be a string (quote it)")
        fprocess = env.get("fprocess", "")
        words = fprocess.split()
        if len(words) < 2 or words[0] != "autoscale-node" or words[1] not in ROLES:
            errors.append(f"{where}: fprocess must run `autoscale-node emitter|worker|collector`")
        if env.get("mode") != "http":
            errors.append(f"{where}: the of-watchdog must run in mode: http")
    return errors


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "deploy/openfaas/stack.yml"
    errors = check(path)
    for e in errors:
        print(f"{path}: {e}")
    if errors:
        sys.exit(1)
    print(f"{path}: ok ({len(yaml.safe_load(open(path))['functions'])} functions)")


if __name__ == "__main__":
    main()
