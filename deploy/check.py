#!/usr/bin/env python3
"""Checks deploy/ without a container engine or a cluster (run by .ci/run):

- the image's binaries (deploy/Dockerfile's BINARIES) are exactly the
  workspace's binaries;
- deploy/compose.yaml parses; every service built from the image runs one of
  those binaries and has a health check; the files it mounts exist; the
  router's upstreams are compose services;
- every Kubernetes manifest validates against Kubernetes' schemas in strict
  mode (kubernetes-validate, which ships the schemas: no network); every
  kustomization lists every manifest of its folder and nothing missing;
  every container of the image runs one of its binaries; the router's
  ConfigMap holds deploy/router/nginx.conf verbatim.
"""

import pathlib
import re
import subprocess
import sys
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
problems = []


def problem(text):
    problems.append(text)
    print(f"deploy/check: {text}", file=sys.stderr)


def workspace_binaries():
    bins = set()
    for manifest in sorted(ROOT.glob("services/*/Cargo.toml")) + sorted(ROOT.glob("crates/*/Cargo.toml")):
        cargo = tomllib.loads(manifest.read_text())
        declared = [b["name"] for b in cargo.get("bin", [])]
        if not declared and (manifest.parent / "src/main.rs").exists():
            declared = [cargo["package"]["name"]]
        bins.update(declared)
    return bins


def image_binaries():
    text = (DEPLOY / "Dockerfile").read_text()
    found = re.search(r'^ARG BINARIES="([^"]*)"', text, re.M)
    if not found:
        problem('deploy/Dockerfile has no ARG BINARIES="..." line')
        return set()
    for needed in ("STOPSIGNAL SIGTERM", "HEALTHCHECK", "USER 10001"):
        if needed not in text:
            problem(f"deploy/Dockerfile lacks {needed}")
    return set(found.group(1).split())


def check_compose(image):
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    profiles = set()
    for name, service in services.items():
        profiles.update(service.get("profiles", []))
        if "healthcheck" not in service and name != "otel-collector":
            problem(f"compose service {name} has no healthcheck")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith(".") and not (DEPLOY / source).exists():
                problem(f"compose service {name} mounts missing {source}")
        if service.get("image") == "recovery:local" or "build" in service:
            entry = service.get("entrypoint") or ["recoveryd"]
            if entry[0] not in image:
                problem(f"compose service {name} runs {entry[0]!r}, not in the image ({sorted(image)})")
    if not {"one", "apart"} <= profiles:
        problem(f"compose profiles are {sorted(profiles)}, want one and apart")
    upstreams = set(re.findall(r"server (\w+):50051;", (DEPLOY / "router/nginx.conf").read_text()))
    for upstream in upstreams - set(services):
        problem(f"router upstream {upstream} is not a compose service")
    print(f"compose: {len(services)} services, profiles {sorted(profiles)}, router upstreams {sorted(upstreams)}")


def check_kubernetes(image):
    k8s = DEPLOY / "kubernetes"
    manifests = []
    for kustomization in sorted(k8s.rglob("kustomization.yaml")):
        folder = kustomization.parent
        listed = yaml.safe_load(kustomization.read_text()).get("resources", [])
        for resource in listed:
            if not (folder / resource).exists():
                problem(f"{kustomization.relative_to(ROOT)} lists missing {resource}")
        for file in sorted(folder.glob("*.yaml")):
            if file.name == "kustomization.yaml":
                continue
            manifests.append(file)
            if file.name not in listed:
                problem(f"{file.relative_to(ROOT)} is not in its kustomization")
    result = subprocess.run(
        ["kubernetes-validate", "--strict", "--quiet", *map(str, manifests)],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        problem(f"kubernetes-validate --strict failed:\n{result.stdout}{result.stderr}")
    router_conf = (DEPLOY / "router/nginx.conf").read_text()
    kinds = {}
    for file in manifests:
        for doc in yaml.safe_load_all(file.read_text()):
            if not doc:
                continue
            kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
            if doc["kind"] == "Deployment":
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    if container["image"].split(":")[0] == "recovery":
                        command = container.get("command", ["recoveryd"])[0]
                        if command not in image:
                            problem(f"{file.name}: {container['name']} runs {command!r}, not in the image")
                    for probe in ("readinessProbe", "livenessProbe"):
                        if probe not in container:
                            problem(f"{file.name}: {container['name']} has no {probe}")
                    if "limits" not in container.get("resources", {}):
                        problem(f"{file.name}: {container['name']} has no resource limits")
            if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "router-config":
                if doc["data"]["nginx.conf"] != router_conf:
                    problem(f"{file.name}: router-config differs from deploy/router/nginx.conf")
    print(f"kubernetes: {len(manifests)} manifests, {'valid' if result.returncode == 0 else 'NOT valid'} (strict): "
          + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))


def main():
    image = image_binaries()
    workspace = workspace_binaries()
    if image != workspace:
        problem(f"the image ships {sorted(image)}, the workspace builds {sorted(workspace)}")
    print(f"image: {sorted(image)}")
    check_compose(image)
    check_kubernetes(image)
    if problems:
        sys.exit(f"deploy/check: {len(problems)} problem(s)")
    print("deploy/check: ok")


if __name__ == "__main__":
    main()
