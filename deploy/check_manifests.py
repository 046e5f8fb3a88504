#!/usr/bin/env python3
"""Checks what the Kubernetes schemas cannot: every pod of deploy/kubernetes/ runs under the
restricted Pod Security profile (non-root, no privilege escalation, read-only root filesystem,
all capabilities dropped, RuntimeDefault seccomp) with resource requests and limits; every
farm function has a readiness probe on its ready file (mounted writable); and the node has a
PodDisruptionBudget. Usage: check_manifests.py DIR"""

import pathlib
import sys

import yaml

FUNCTIONS = {"autoscale-worker", "autoscale-emitter", "autoscale-collector"}


class UniqueKeyLoader(yaml.SafeLoader):
    """A loader that refuses a mapping with a key twice: YAML keeps the last one silently,
    so a second `securityContext:` would quietly replace the first."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def check_pod(name, spec):
    errors = []
    pod = spec.get("securityContext") or {}
    if pod.get("runAsNonRoot") is not True:
        errors.append(f"{name}: pod securityContext.runAsNonRoot must be true")
    if (pod.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        errors.append(f"{name}: pod seccompProfile must be RuntimeDefault")
    for c in spec.get("containers") or []:
        cname = f"{name}/{c.get('name')}"
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{cname}: allowPrivilegeEscalation must be false")
        if sc.get("readOnlyRootFilesystem") is not True:
            errors.append(f"{cname}: readOnlyRootFilesystem must be true")
        if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
            errors.append(f"{cname}: capabilities must drop ALL")
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            if not {"cpu", "memory"} <= set((res.get(kind) or {}).keys()):
                errors.append(f"{cname}: resources.{kind} needs cpu and memory")
        if name in FUNCTIONS:
            errors += check_ready(cname, c, spec)
    return errors


def check_ready(cname, c, spec):
    env = {e.get("name"): e.get("value") for e in c.get("env") or []}
    ready = env.get("AUTOSCALE_READY_FILE")
    if not ready:
        return [f"{cname}: AUTOSCALE_READY_FILE is not set"]
    probe = ((c.get("readinessProbe") or {}).get("exec") or {}).get("command")
    if probe != ["test", "-f", ready]:
        return [f"{cname}: readiness probe must be test -f {ready}, is {probe}"]
    mounts = [m.get("mountPath", "") for m in c.get("volumeMounts") or []]
    if not any(ready.startswith(m.rstrip("/") + "/") for m in mounts):
        return [f"{cname}: {ready} is not on a mounted (writable) volume"]
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    names = {m.get("name") for m in c.get("volumeMounts") or []}
    if not names <= volumes:
        return [f"{cname}: mounts {names - volumes} that are not volumes"]
    return []


def main(root):
    errors, pods, pdb = [], 0, False
    for path in sorted(pathlib.Path(root).glob("*.yaml")):
        with open(path) as f:
            for doc in yaml.load_all(f, Loader=UniqueKeyLoader):
                if not doc:
                    continue
                kind, name = doc.get("kind"), doc["metadata"]["name"]
                if kind == "Deployment":
                    pods += 1
                    errors += check_pod(name, doc["spec"]["template"]["spec"])
                if kind == "PodDisruptionBudget":
                    labels = doc["spec"]["selector"].get("matchLabels") or {}
                    pdb = pdb or labels.get("app") == "autoscale-node"
    if not pdb:
        errors.append("no PodDisruptionBudget selects app=autoscale-node")
    if pods < 4:
        errors.append(f"expected the node and three functions, found {pods} Deployments")
    for e in errors:
        print(e)
    print(f"{root}: {'ok' if not errors else 'FAILED'} ({pods} Deployments)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "deploy/kubernetes"))
