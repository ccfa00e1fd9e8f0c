"""deploy/kubernetes: every manifest, and the example overlay as kustomize would render it, passes
`kubernetes-validate --strict` (offline schemas; the oldest and newest Kubernetes we document); the
settings files the ConfigMaps carry are valid gateway settings; the Deployment keeps its probes and
hardening; and a manifest with a typo'd key fails, naming the key.

There is no kustomize here (Debian's kubectl 1.20 predates what we use), so `render` below does the
little the overlays need, as kustomize does it: namespace, image override, configMapGenerator
(behavior replace) and strategic-merge patches (maps merged, lists of named items merged by name,
a null deletes a key, `$patch: delete` deletes the resource). It is not a general kustomize: a
kustomization using anything else fails the test, by name.

The `replicas` overlay (issue 18) runs N pods on PostgreSQL and Redis: its settings, with the
per-pod flags Kubernetes expands, are valid gateway settings naming its own Services and Secret;
it drains within the pod's grace period; its HPA reads the gauge the adapter rule serves."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from ovos_realtime_gateway.cli import build_parser, settings_from_args
from ovos_realtime_gateway.observability.metrics import GatewayMetrics
from ovos_realtime_gateway.settings import GatewaySettings

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
            if value is None:
                merged.pop(key, None)  # a null in a patch deletes the key
            else:
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
        if patch.get("$patch") == "delete":
            del resources[targets[0]]
        else:
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


KINDS = {
    "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "HorizontalPodAutoscaler", "ConfigMap",
}  # fmt: skip
OVERLAY_KINDS = {
    "example": {*KINDS, "PersistentVolumeClaim"},
    "replicas": {*KINDS, "Secret", "StatefulSet"},  # PostgreSQL and Redis; no volume claim
}


@pytest.mark.parametrize("overlay", sorted(OVERLAY_KINDS))
@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_and_the_rendered_overlay_pass_strict_validation(
    version: str, overlay: str, tmp_path: Path
) -> None:
    rendered = render(KUBE / "overlays" / overlay)
    assert {r["kind"] for r in rendered} == OVERLAY_KINDS[overlay]
    files = []
    for number, resource in enumerate(rendered):
        files.append(tmp_path / f"overlay-{number}-{resource['kind']}.yaml")
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


POD_FIELDS = {"status.podIP": "10.1.2.3"}  # what the downward API gives a pod, for the test


def pod_args(gateway: dict[str, Any]) -> list[str]:
    """The container's args as the kubelet runs them: `$(VAR)` expanded from its env (values and
    the downward API's fields), as Kubernetes does."""
    env = {}
    for item in gateway.get("env", []):
        field = item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        env[item["name"]] = POD_FIELDS[field] if field else item.get("value", "")
    return [re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), arg) for arg in gateway["args"]]


def pod_settings(directory: Path) -> GatewaySettings:
    """The settings a pod of the rendered Deployment runs with: its ConfigMap's file (checked to be
    the one mounted where `--config` points) and its flags, read by the real command line."""
    (config,) = [r for r in render(directory) if r["kind"] == "ConfigMap"]
    (deployment,) = [r for r in render(directory) if r["kind"] == "Deployment"]
    (gateway,) = containers(deployment)
    args = pod_args(gateway)
    config_path = Path(args[args.index("--config") + 1])
    mount = next(m for m in gateway["volumeMounts"] if m["mountPath"] == str(config_path.parent))
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    source = directory / config_path.name
    assert config["data"][config_path.name] == source.read_text()
    args[args.index("--config") + 1] = str(source)
    return settings_from_args(build_parser().parse_args(args))


@pytest.mark.parametrize("directory", ["base", "overlays/example", "overlays/replicas"])
def test_the_configmap_carries_valid_gateway_settings(directory: Path) -> None:
    settings = pod_settings(KUBE / directory)
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


def _secret_file(reference: str | None, mounts: dict[str, str], secret: Resource) -> None:
    """`reference` is `file:` of a key of `secret`, mounted where the pod reads it."""
    assert reference is not None and reference.startswith("file:"), reference
    path = Path(reference.removeprefix("file:"))
    assert mounts.get(str(path.parent)) == secret["metadata"]["name"], (reference, mounts)
    assert path.name in secret["stringData"], f"{reference}: the Secret has no key {path.name}"


def test_the_replicas_overlay_runs_n_pods_on_shared_state_and_drains_within_their_grace() -> None:
    directory = KUBE / "overlays" / "replicas"
    rendered = render(directory)
    by_kind: dict[str, list[Resource]] = {}
    for resource in rendered:
        by_kind.setdefault(resource["kind"], []).append(resource)
    (deployment,) = by_kind["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (gateway,) = pod["containers"]
    assert deployment["spec"]["replicas"] >= 2 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert not any("persistentVolumeClaim" in volume for volume in pod["volumes"]), "no ReadWriteOnce store"

    settings = pod_settings(directory)
    services = {s["metadata"]["name"]: s for s in by_kind["Service"]}
    for url in (settings.store_url, settings.shared_limits.redis_url, settings.cluster.redis_url):
        assert url is not None
        service = services[str(urlsplit(url).hostname)]  # a Service of the overlay
        assert urlsplit(url).port in {port["port"] for port in service["spec"]["ports"]}, url
    (secret,) = by_kind["Secret"]
    secret_volumes = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    mounts = {
        m["mountPath"]: secret_volumes[m["name"]]
        for m in gateway["volumeMounts"]
        if m["name"] in secret_volumes
    }
    for reference in (
        settings.store_password,
        settings.shared_limits.redis_password,
        settings.cluster.redis_password,
        settings.cluster.hop_secret,
        settings.metrics_token,  # /metrics is closed beyond the pod: Prometheus scrapes with it
    ):
        _secret_file(reference, mounts, secret)
    # each pod tells the others its own address: the downward API's pod IP, through --replica-url
    assert settings.cluster.replica_url == f"http://{POD_FIELDS['status.podIP']}:8080"

    # a stopping pod pauses (preStop), drains, then stops, all before the kubelet's SIGKILL
    pause = gateway["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 0 < settings.drain_seconds
    assert pod["terminationGracePeriodSeconds"] >= pause + settings.drain_seconds + 10
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"  # 503 while draining
    (budget,) = by_kind["PodDisruptionBudget"]
    assert budget["spec"]["maxUnavailable"] == 1  # node drains take one replica at a time

    # the HPA scales on sessions in progress: the gauge the gateway exports, which the shipped
    # prometheus-adapter rule serves under the name the HPA asks for
    (hpa,) = by_kind["HorizontalPodAutoscaler"]
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"] >= 2
    (pods_metric,) = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    rules = yaml.safe_load((directory / "prometheus-adapter-rules.yaml").read_text())["rules"]
    (rule,) = [r for r in rules if r["name"]["as"] == pods_metric]
    series = rule["seriesQuery"].split("{")[0]
    assert re.fullmatch(rule["name"]["matches"], series)
    assert series in GatewayMetrics().render().decode(), f"the gateway exports no {series}"
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}

    # the demo's PostgreSQL and Redis: StatefulSets reading the same Secret
    statefulsets = {s["metadata"]["name"]: s for s in by_kind["StatefulSet"]}
    assert set(statefulsets) == {"ovos-realtime-postgres", "ovos-realtime-redis"} <= set(services)
    for name, statefulset in statefulsets.items():
        selector = statefulset["spec"]["selector"]["matchLabels"]
        assert services[name]["spec"]["selector"] == selector
        assert statefulset["spec"]["volumeClaimTemplates"], f"{name} keeps its data on a volume"
    assert "ovos-realtime-secrets" in yaml.safe_dump(statefulsets["ovos-realtime-postgres"])
    assert "ovos-realtime-secrets" in yaml.safe_dump(statefulsets["ovos-realtime-redis"])
