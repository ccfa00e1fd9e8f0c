"""deploy/kubernetes: every manifest, and the example overlay as kustomize would render it, passes
`kubernetes-validate --strict` (offline schemas; the oldest and newest Kubernetes we document); the
settings files the ConfigMaps carry are valid gateway settings; the Deployment keeps its probes and
hardening; and a manifest with a typo'd key fails, naming the key.

There is no kustomize here (Debian's kubectl 1.20 predates what we use), so `render` below does the
little the overlay needs, as kustomize does it: namespace, image override, configMapGenerator
(behavior replace) and strategic-merge patches (maps merged, lists of named items merged by name).
It is not a general kustomize: a kustomization using anything else fails the test, by name."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ovos_realtime_gateway.settings import GatewaySettings, load_config_file

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
VERSIONS = ("1.30", "1.37")
SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "labels",
    "namespace",
    "images",
    "configMapGenerator",
    "patches",
}
Resource = dict[str, Any]


def kustomization(directory: Path) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED
    assert not unknown, f"{directory}: the test's renderer does not do {sorted(unknown)}"
    return spec


def merge(base: Any, patch: Any) -> Any:
    """Strategic merge as kustomize applies a patch: maps merge, named lists merge by `name`."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    named = isinstance(base, list) and isinstance(patch, list)
    if named and all(isinstance(item, dict) and "name" in item for item in [*base, *patch]):
        by_name = {item["name"]: item for item in base}
        for item in patch:
            by_name[item["name"]] = merge(by_name[item["name"]], item) if item["name"] in by_name else item
        return list(by_name.values())
    return patch


def render(directory: Path) -> list[Resource]:
    """The resources `kubectl apply -k directory` would send (ConfigMap names without the hash)."""
    spec = kustomization(directory)
    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        assert path.exists(), f"{directory}/kustomization.yaml: {entry} does not exist"
        resources += render(path) if path.is_dir() else list(yaml.safe_load_all(path.read_text()))
    for generator in spec.get("configMapGenerator", []):
        data = {}
        for name in generator["files"]:
            assert (directory / name).is_file(), f"{directory}/kustomization.yaml: {name} does not exist"
            data[name] = (directory / name).read_text()
        made = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": generator["name"]},
            "data": data,
        }
        old = [
            r for r in resources if r["kind"] == "ConfigMap" and r["metadata"]["name"] == generator["name"]
        ]
        assert bool(old) == (generator.get("behavior") == "replace"), f"{directory}: {generator['name']}"
        resources = [r for r in resources if not any(r is o for o in old)] + [made]
    for patch_entry in spec.get("patches", []):
        path = directory / patch_entry["path"]
        assert path.is_file(), f"{directory}/kustomization.yaml: {patch_entry['path']} does not exist"
        patch = yaml.safe_load(path.read_text())
        key = (patch["kind"], patch["metadata"]["name"])
        targets = [i for i, r in enumerate(resources) if (r["kind"], r["metadata"]["name"]) == key]
        assert len(targets) == 1, f"{path}: patches {key}, which the base has {len(targets)} times"
        resources[targets[0]] = merge(resources[targets[0]], patch)
    for resource in resources:
        for label in spec.get("labels", []):
            resource["metadata"].setdefault("labels", {}).update(label["pairs"])
        for image in spec.get("images", []):
            for container in containers(resource):
                if container["image"].split(":")[0] == image["name"]:
                    container["image"] = f"{image['newName']}:{image['newTag']}"
        if "namespace" in spec:
            resource["metadata"]["namespace"] = spec["namespace"]
    return resources


def containers(resource: Resource) -> list[dict[str, Any]]:
    if resource["kind"] != "Deployment":
        return []
    result: list[dict[str, Any]] = resource["spec"]["template"]["spec"]["containers"]
    return result


def validate(paths: list[Path], version: str) -> subprocess.CompletedProcess[str]:
    command = [str(ROOT / ".venv" / "bin" / "kubernetes-validate"), "--strict", "-k", version]
    return subprocess.run([*command, *map(str, paths)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_and_the_rendered_overlay_pass_strict_validation(version: str, tmp_path: Path) -> None:
    rendered = render(KUBE / "overlays" / "example")
    assert {r["kind"] for r in rendered} == {
        "Deployment", "Service", "PersistentVolumeClaim", "PodDisruptionBudget", "NetworkPolicy",
        "HorizontalPodAutoscaler", "ConfigMap",
    }  # fmt: skip
    files = []
    for resource in rendered:
        files.append(tmp_path / f"overlay-{resource['kind']}.yaml")
        files[-1].write_text(yaml.safe_dump(resource))
    # the base's manifests as written; the overlay's patches only as merged (alone they are partial)
    base = sorted(
        p for p in (KUBE / "base").glob("*.yaml") if p.name not in ("kustomization.yaml", "gateway.yaml")
    )
    done = validate(base + files, version)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" passed for resource ") == len(base) + len(files), done.stdout


def test_a_typo_in_a_manifest_fails_naming_the_key(tmp_path: Path) -> None:
    deployment = (KUBE / "base" / "deployment.yaml").read_text()
    assert "readinessProbe:" in deployment
    typo = tmp_path / "deployment.yaml"
    typo.write_text(deployment.replace("readinessProbe:", "readynessProbe:"))
    done = validate([typo], VERSIONS[-1])
    assert done.returncode != 0
    assert "'readynessProbe' was unexpected" in done.stdout + done.stderr, done.stdout + done.stderr


@pytest.mark.parametrize("directory", ["base", "overlays/example"])
def test_the_configmap_carries_valid_gateway_settings(directory: Path) -> None:
    (config,) = [r for r in render(KUBE / directory) if r["kind"] == "ConfigMap"]
    (deployment,) = [r for r in render(KUBE / directory) if r["kind"] == "Deployment"]
    (gateway,) = containers(deployment)
    config_path = Path(gateway["args"][gateway["args"].index("--config") + 1])
    mount = next(m for m in gateway["volumeMounts"] if m["mountPath"] == str(config_path.parent))
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    source = KUBE / directory / config_path.name
    assert config["data"][config_path.name] == source.read_text()
    settings = GatewaySettings.model_validate(load_config_file(source))
    assert (settings.host, settings.port, str(settings.data_dir)) == ("0.0.0.0", 8080, "/data")


def test_the_deployment_keeps_its_probes_and_hardening() -> None:
    (deployment,) = [r for r in render(KUBE / "overlays" / "example") if r["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (gateway,) = pod["containers"]
    assert gateway["image"] == "registry.example.org/voice/ovos-realtime:0.1.0"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    hardening = gateway["securityContext"]
    assert hardening["readOnlyRootFilesystem"] is True and hardening["capabilities"]["drop"] == ["ALL"]
    assert gateway["resources"]["limits"]["memory"] == "1536Mi", "the overlay's patch is applied"
    assert any(m["mountPath"] == "/data" for m in gateway["volumeMounts"])
    names = {port["name"] for port in gateway["ports"]}
    (service,) = [r for r in render(KUBE / "overlays" / "example") if r["kind"] == "Service"]
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= names
