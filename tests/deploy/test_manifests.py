"""deploy/: what can be checked without a Docker engine or a cluster.

Every manifest parses; every `gridrider` command line in them parses with the real CLI parser; every
setting they set is one config.py reads, and the settings of each container load; ports, health
paths, body limits and grace periods agree with the code; no secret is in a tracked file; the
image's entry point runs from a plain virtualenv laid out as the Dockerfile lays it out.
"""

from __future__ import annotations

import ast
import fnmatch
import ipaddress
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest
import yaml

from gridrider import app as app_module
from gridrider import cli
from gridrider.api.areas import MAX_IMPORT_BODY
from gridrider.api.health import HealthController
from gridrider.api.reports import MAX_REPORT_BODY
from gridrider.config import _ENV, OPTIONAL_SECRET_FIELDS, SECRET_FIELDS, Settings, SettingsError, load_settings
from gridrider.embedded import generate_vapid_private_key_pem
from gridrider.jobs.registry import queues_in_use

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
CADDYFILE = DEPLOY / "Caddyfile"
DOCKERFILE = DEPLOY / "Dockerfile"
LAUNCHER = DEPLOY / "image" / "gridrider"
GRIDRIDER_IMAGE = "gridrider"  # the image name in compose (before the tag) and in the k8s manifests

# Environment variables an app container may set that are not gridrider settings, and who reads them.
FOREIGN_ENV = {
    "FORWARDED_ALLOW_IPS": "uvicorn (trusted proxies for X-Forwarded-For)",
    "PATH": "the shell (the venv's bin first)",
    "PYTHONUNBUFFERED": "Python (logs reach the collector at once)",
    "PYTHONDONTWRITEBYTECODE": "Python (read-only root filesystem)",
}
# Stand-ins for deploy/.env when compose.yaml's ${...} are expanded.
COMPOSE_SAMPLE_ENV = {
    "POSTGRES_PASSWORD": secrets.token_hex(16),
    "REDIS_PASSWORD": secrets.token_hex(16),
    "MINIO_ROOT_PASSWORD": secrets.token_hex(16),
}
SECRET_ENV_NAMES = {name for name, f in _ENV.items() if f in SECRET_FIELDS + OPTIONAL_SECRET_FIELDS}


# ── reading the manifests ───────────────────────────────────────────────────────────────────────

def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def load_docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$ (a literal $)."""

    def one(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if name in env and env[name] != "":
            return env[name]
        if op == ":-":
            return arg or ""
        if op == ":?":
            raise AssertionError(f"compose needs {name}: {arg}")
        return ""

    value = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}", one, value.replace("$$", "\0"))
    return value.replace("\0", "$")


def read_env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, pending = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            word, _, rest = pending.partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def dockerfile_env() -> dict[str, str]:
    env = {}
    for word, rest in dockerfile_stages()[-1]:
        if word == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def exec_form(rest: str) -> list[str]:
    return yaml.safe_load(rest)  # a JSON array is YAML too


def caddyfile_text() -> str:
    return "\n".join(line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
                     for line in CADDYFILE.read_text(encoding="utf-8").splitlines())


def k8s_docs() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in sorted(K8S.rglob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in load_docs(path)]


def k8s_of_kind(kind: str) -> list[dict]:
    return [doc for _, doc in k8s_docs() if doc.get("kind") == kind]


def pod_specs() -> list[tuple[str, dict]]:
    """(name, pod spec) of every workload."""
    specs = []
    for _, doc in k8s_docs():
        if doc.get("kind") in ("Deployment", "Job"):
            specs.append((doc["metadata"]["name"], doc["spec"]["template"]))
    return specs


def labels_match(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def grace_seconds(text: str) -> float:
    total, units = 0.0, {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(text)):
        total += float(number) * units[unit]
    return total


def uvicorn_drain_s() -> float:
    tree = ast.parse(Path(cli.__file__).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "timeout_graceful_shutdown":
            return float(ast.literal_eval(node.value))
    raise AssertionError("cli.py no longer passes timeout_graceful_shutdown to uvicorn")


# ── the gridrider containers, from compose and from Kubernetes ──────────────────────────────────

@dataclass
class AppContainer:
    where: str
    argv: list[str]
    env: dict[str, str]
    # file path inside the container → where its content comes from (a compose secret or a k8s key)
    files: dict[str, str] = field(default_factory=dict)
    grace_s: float | None = None
    k8s: dict | None = None  # the container spec, for Kubernetes

    @property
    def command(self) -> str:
        return self.argv[0]


def compose_services() -> dict[str, dict]:
    return load_docs(COMPOSE)[0]["services"]


def is_gridrider_image(image: str) -> bool:
    name = interpolate(image, COMPOSE_SAMPLE_ENV).rsplit("/", 1)[-1]
    return name.split(":", 1)[0] == GRIDRIDER_IMAGE


def compose_app_containers() -> list[AppContainer]:
    out = []
    for name, service in compose_services().items():
        if not is_gridrider_image(service.get("image", "")):
            continue
        env = dict(dockerfile_env())
        for env_file in service.get("env_file", []):
            env.update(read_env_file(DEPLOY / (env_file if isinstance(env_file, str) else env_file["path"])))
        environment = service.get("environment", {})
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        env.update({k: interpolate(str(v), COMPOSE_SAMPLE_ENV) for k, v in environment.items()})
        files = {f"/run/secrets/{s if isinstance(s, str) else s['target']}": f"compose secret {s}"
                 for s in service.get("secrets", [])}
        grace = service.get("stop_grace_period")
        out.append(AppContainer(f"compose:{name}", [str(a) for a in service["command"]], env, files,
                                grace_seconds(grace) if grace else 10.0))
    return out


def k8s_app_containers() -> list[AppContainer]:
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in k8s_of_kind("ConfigMap")}
    secrets_ = {d["metadata"]["name"]: {**d.get("stringData", {}), **d.get("data", {})} for d in k8s_of_kind("Secret")}
    out = []
    for name, template in pod_specs():
        spec = template["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            if container["image"].split(":", 1)[0] != GRIDRIDER_IMAGE:
                continue
            assert "command" not in container, f"{name}: keep the image's entry point (gridrider); use args"
            env = dict(dockerfile_env())
            for source in container.get("envFrom", []):
                ref = source["configMapRef"]["name"]
                assert ref in configmaps, f"{name}: envFrom names a missing ConfigMap {ref}"
                env.update(configmaps[ref])
            for item in container.get("env", []):
                if "value" in item:
                    env[item["name"]] = str(item["value"])
                else:
                    ref = item["valueFrom"]["secretKeyRef"]
                    assert ref["key"] in secrets_.get(ref["name"], {}), f"{name}: no key {ref['key']} in {ref['name']}"
                    env[item["name"]] = secrets_[ref["name"]][ref["key"]]
            files = {}
            for mount in container.get("volumeMounts", []):
                secret = volumes[mount["name"]].get("secret")
                if secret:
                    keys = secrets_.get(secret["secretName"])
                    assert keys is not None, f"{name}: mounts a missing Secret {secret['secretName']}"
                    for item in secret.get("items", [{"key": k, "path": k} for k in keys]):
                        assert item["key"] in keys, f"{name}: no key {item['key']} in {secret['secretName']}"
                        files[f"{mount['mountPath']}/{item['path']}"] = f"secret key {item['key']}"
            out.append(AppContainer(f"k8s:{name}/{container['name']}", container["args"], env, files,
                                    float(spec.get("terminationGracePeriodSeconds", 30)), container))
    return out


def app_containers() -> list[AppContainer]:
    return compose_app_containers() + k8s_app_containers()


def container_ids(containers: list[AppContainer]) -> list[str]:
    return [c.where for c in containers]


APP_CONTAINERS = app_containers()


def app_port(env: dict[str, str]) -> int:
    return int(env.get("GRIDRIDER_PORT", Settings().port))


def lease_s(env: dict[str, str]) -> int:
    """The lease of every ordinary job: GRIDRIDER_JOB_LEASE_S.

    Kinds with a longer lease of their own (JobKind.lease_s: the daily retention and archiving runs)
    commit in pages and hand over to a follow-up job, so a deploy that stops one loses one page; a
    grace period that long would hold every worker rollout for a quarter of an hour.
    """
    return int(env.get("GRIDRIDER_JOB_LEASE_S", Settings().job_lease_s))


def parse(argv: list[str]):
    try:
        return cli.build_parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"`gridrider {shlex.join(argv)}` does not parse with cli.build_parser()") from exc


# ── every file parses ───────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path):
    docs = load_docs(path)
    assert docs, f"{path} is empty"
    assert all(isinstance(doc, dict) for doc in docs)


def test_manifests_define_every_gridrider_process():
    services = compose_services()
    assert {"postgres", "redis", "minio", "minio-init", "migrate", "api", "worker", "photo-worker", "proxy"} <= set(
        services)
    assert services["api"]["deploy"]["replicas"] == 2
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in k8s_docs()}
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job", "ConfigMap",
                 "Secret", "Ingress", "NetworkPolicy"):
        assert any(k == kind for k, _ in kinds), f"deploy/k8s has no {kind}"


# ── commands ────────────────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("container", APP_CONTAINERS, ids=container_ids(APP_CONTAINERS))
def test_every_command_parses_with_the_cli(container):
    args = parse(container.argv)
    assert args.run in (cli.cmd_api, cli.cmd_worker, cli.cmd_migrate), container.argv


def test_dockerfile_entry_point_and_default_command_parse():
    instructions = dict(dockerfile_stages()[-1])
    entrypoint = exec_form(instructions["ENTRYPOINT"])
    assert entrypoint[-1] == "gridrider", "the image's entry point is the gridrider command"
    assert parse(exec_form(instructions["CMD"])).run is cli.cmd_api


def test_every_queue_has_a_worker_in_compose_and_in_kubernetes():
    for where in ("compose:", "k8s:"):
        served = {parse(c.argv).queue for c in APP_CONTAINERS if c.where.startswith(where) and c.command == "worker"}
        needed = {queue.rpartition(":")[2] for queue in queues_in_use()}
        assert needed <= served, f"{where} runs no worker for {needed - served}"


def readme_commands() -> list[list[str]]:
    """Every `gridrider …` command line (and `docker run IMAGE …`, whose entry point is gridrider) in the README."""
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0]
            # Every occurrence, overlapping ones too: `kubectl -n gridrider exec … -- gridrider enrol …`.
            for match in re.finditer(r"(?:^|(?<=[\s/]))gridrider(?::\S+)? (?=[a-z])", line):
                argv = shlex.split(re.split(r"[|;&>]", line[match.end():], maxsplit=1)[0])
                if argv and argv[0] in cli.build_parser()._subparsers._group_actions[0].choices:
                    found.append(argv)
    return found


def test_readme_gridrider_commands_parse():
    commands = readme_commands()
    assert commands, "the README shows no gridrider command"
    for argv in commands:
        parse(argv)


# ── settings ────────────────────────────────────────────────────────────────────────────────────

def check_env_name(name: str, where: str) -> None:
    if name in _ENV:
        return
    if name.endswith("_FILE") and name[:-5] in SECRET_ENV_NAMES:
        return
    assert not name.startswith("GRIDRIDER_") and name not in ("DATABASE_URL", "REDIS_URL"), (
        f"{where}: {name} is not a setting config.py reads")
    assert name in FOREIGN_ENV, f"{where}: {name} is neither a gridrider setting nor a known foreign variable"


def test_every_env_var_in_the_manifests_is_a_real_setting():
    sources: list[tuple[str, dict]] = [(c.where, c.env) for c in APP_CONTAINERS]
    sources.append(("Dockerfile ENV", dockerfile_env()))
    sources.append(("deploy/compose.env", read_env_file(DEPLOY / "compose.env")))
    sources += [(f"ConfigMap {d['metadata']['name']}", d.get("data", {})) for d in k8s_of_kind("ConfigMap")]
    for where, env in sources:
        for name in env:
            check_env_name(name, where)
    # Any GRIDRIDER_* anywhere in deploy/ (README, Caddyfile, comments included) is a real name too.
    for path in [*yaml_files(), DOCKERFILE, CADDYFILE, DEPLOY / "README.md", DEPLOY / "compose.env"]:
        for name in set(re.findall(r"\bGRIDRIDER_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8"))):
            if name != "GRIDRIDER_IMAGE":  # compose's own variable: which image to run
                check_env_name(name, str(path.relative_to(REPO)))


def test_env_example_lists_every_setting_and_nothing_else():
    names = set(read_env_file(DEPLOY / "env.example"))
    assert names == set(_ENV), f"missing: {set(_ENV) - names}; unknown: {names - set(_ENV)}"


def materialise_secret_files(container: AppContainer, tmp_path: Path) -> dict[str, str]:
    """The container's env with each GRIDRIDER_*_FILE pointing at a local file holding a valid value."""
    env = dict(container.env)
    for name in [n for n in env if n.endswith("_FILE")]:
        path = env[name]
        assert path in container.files, f"{container.where}: {name}={path} but nothing is mounted there"
        value = generate_vapid_private_key_pem() if "VAPID" in name else secrets.token_urlsafe(48)
        local = tmp_path / container.where.replace("/", "_").replace(":", "_") / Path(path).name
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(value)
        env[name] = str(local)
    for name in ("DATABASE_URL", "REDIS_URL"):
        if name in env:
            env[name] = env[name].replace("CHANGE_ME", secrets.token_hex(8))
    return env


@pytest.mark.parametrize("container", APP_CONTAINERS, ids=container_ids(APP_CONTAINERS))
def test_every_container_settings_load(container, tmp_path):
    settings = load_settings(materialise_secret_files(container, tmp_path))
    assert settings.database_url, f"{container.where}: without DATABASE_URL the process would start embedded servers"
    if container.command in ("api", "worker"):
        assert settings.redis_url, f"{container.where}: api and worker need REDIS_URL"
    for field_name in SECRET_FIELDS:
        assert getattr(settings, field_name), f"{container.where}: {field_name} is not provided"
    if container.command == "api":
        assert settings.host in ("0.0.0.0", "::"), f"{container.where}: the API must listen beyond loopback"
        assert settings.public_url.startswith("https://"), "a service worker needs HTTPS"
        assert not settings.publish_schema, f"{container.where}: no OpenAPI schema on the public listener"


def test_secret_placeholders_fail_fast():
    example = next(d for d in k8s_of_kind("Secret"))
    for key in ("session_secret", "url_signing_secret", "vapid_private_key"):
        env = {f"GRIDRIDER_{key.upper()}": example["stringData"][key]}
        with pytest.raises(SettingsError):
            load_settings(env)


def test_forwarded_allow_ips_covers_the_proxy_network():
    subnet = ipaddress.ip_network(compose_edge_subnet())
    trusted = read_env_file(DEPLOY / "compose.env")["FORWARDED_ALLOW_IPS"]
    assert any(subnet.subnet_of(ipaddress.ip_network(item.strip())) for item in trusted.split(","))
    import uvicorn.config

    source = Path(uvicorn.config.__file__).read_text(encoding="utf-8")
    assert '"FORWARDED_ALLOW_IPS"' in source, "uvicorn no longer reads FORWARDED_ALLOW_IPS"


def compose_edge_subnet() -> str:
    return load_docs(COMPOSE)[0]["networks"]["edge"]["ipam"]["config"][0]["subnet"]


# ── ports and health paths ──────────────────────────────────────────────────────────────────────

def health_paths() -> set[str]:
    return {path for handler in (HealthController.healthz, HealthController.readyz) for path in handler.paths}


def test_ports_match_what_the_api_listens_on():
    apis = [c for c in APP_CONTAINERS if c.command == "api"]
    assert apis
    ports = {app_port(c.env) for c in apis}
    assert len(ports) == 1
    port = ports.pop()
    # Dockerfile
    exposed = {int(p.split("/")[0]) for w, rest in dockerfile_stages()[-1] if w == "EXPOSE" for p in rest.split()}
    assert exposed == {port}
    # compose: only the proxy publishes ports, and it proxies to the API's port
    for name, service in compose_services().items():
        if name != "proxy":
            assert "ports" not in service, f"compose {name} publishes a port: only the proxy faces the network"
    upstream = re.search(r"dynamic a \{[^}]*\bname api\b[^}]*\bport (\d+)", caddyfile_text(), flags=re.S)
    assert upstream and int(upstream.group(1)) == port
    # Kubernetes: the container port named http, the Service, the Ingress, the probes
    for c in apis:
        if c.k8s is None:
            continue
        named = {p["name"]: p["containerPort"] for p in c.k8s["ports"]}
        assert named["http"] == port
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert c.k8s[probe]["httpGet"]["port"] in ("http", port)
    service = next(d for d in k8s_of_kind("Service") if d["metadata"]["name"] == "gridrider-api")
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert service_ports["http"]["targetPort"] in ("http", port)
    for ingress in k8s_of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] == "gridrider-api"
                assert backend["port"].get("name") == "http" or backend["port"].get("number") == service_ports[
                    "http"]["port"], "the Ingress routes only to the API's http port, never to metrics"


def test_metrics_port_is_one_named_port_everywhere():
    """The metrics listener does not exist yet: the manifests assume a separate port named `metrics`."""
    numbers = set()
    for c in APP_CONTAINERS:
        if c.k8s is not None and c.command in ("api", "worker"):
            named = {p["name"]: p["containerPort"] for p in c.k8s.get("ports", [])}
            assert "metrics" in named, f"{c.where} has no port named metrics"
            numbers.add(named["metrics"])
            assert named["metrics"] != app_port(c.env)
    assert len(numbers) == 1
    service = next(d for d in k8s_of_kind("Service") if d["metadata"]["name"] == "gridrider-api")
    assert {"metrics": "metrics"}.items() <= {p["name"]: p["targetPort"] for p in service["spec"]["ports"]}.items()
    metrics_fields = [f for f in Settings.__struct_fields__ if "metrics" in f and "port" in f]
    for f in metrics_fields:  # once the listener exists, its default must be the port assumed here
        assert getattr(Settings(), f) in numbers


def test_network_policies_name_ports_the_pods_have():
    pods = [(tpl["metadata"]["labels"], tpl["spec"]["containers"]) for _, tpl in pod_specs()]
    for policy in k8s_of_kind("NetworkPolicy"):
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        selected = [containers for labels, containers in pods if labels_match(selector, labels)]
        assert selected, f"NetworkPolicy {policy['metadata']['name']} selects no pod"
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                for containers in selected:
                    if policy["metadata"]["name"].endswith("metrics-from-monitoring") and not any(
                            p.get("name") == "metrics" for c in containers for p in c.get("ports", [])):
                        continue  # the migrate Job has no listener at all
                    names = {p.get("name") for c in containers for p in c.get("ports", [])}
                    assert port["port"] in names, f"{policy['metadata']['name']}: no port {port['port']}"
    metrics_policies = [p for p in k8s_of_kind("NetworkPolicy")
                        if any(port["port"] == "metrics" for r in p["spec"].get("ingress", []) for port in r["ports"])]
    assert metrics_policies, "no NetworkPolicy restricts the metrics port"
    assert any(p["spec"]["podSelector"] == {} and p["spec"].get("ingress") is None
               for p in k8s_of_kind("NetworkPolicy")), "no default-deny ingress policy"


def test_health_paths_exist_in_the_api():
    paths = health_paths()
    assert {"/healthz", "/readyz"} <= paths
    for c in APP_CONTAINERS:
        if c.k8s is not None and c.command == "api":
            assert c.k8s["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert c.k8s["livenessProbe"]["httpGet"]["path"] == "/healthz"
    healthcheck = dict(dockerfile_stages()[-1])["HEALTHCHECK"]
    assert "/healthz" in healthcheck and "GRIDRIDER_PORT" in healthcheck
    compose_check = " ".join(compose_services()["api"]["healthcheck"]["test"])
    assert "/healthz" in compose_check and "GRIDRIDER_PORT" in compose_check
    for name in ("worker", "photo-worker", "migrate"):  # no listener: the image's check would always fail
        assert compose_services()[name]["healthcheck"] == {"disable": True}


# ── durability, proxy rules, limits, shutdown ───────────────────────────────────────────────────

def test_redis_in_compose_is_durable_and_never_evicts():
    command = compose_services()["redis"]["command"]
    text = " ".join(command.split() if isinstance(command, str) else " ".join(command).split())
    assert re.search(r"--appendonly yes\b", text)
    assert re.search(r"--maxmemory-policy noeviction\b", text)


def test_proxy_never_caches_sw_js_and_hides_metrics():
    text = caddyfile_text()
    matcher = re.search(r"@(\w+) path /sw\.js\s*$", text, flags=re.M)
    assert matcher, "no matcher for /sw.js"
    rule = re.search(rf"header @{matcher.group(1)} \{{[^}}]*Cache-Control \"([^\"]+)\"", text)
    assert rule and "no-cache" in rule.group(1) and "no-store" in rule.group(1)
    # The shell's URLs carry no version: only the icons may be cached without revalidation (README, Notes).
    for name, paths in re.findall(r"@(\w+) path ([^\n]+)", text):
        cached = re.search(rf"header @{name} \{{[^}}]*max-age=(\d+)", text)
        if cached and int(cached.group(1)) > 0:
            assert paths.split() == ["/icons/*"], f"a long HTTP cache on {paths} could mix two releases"
    assert "no-cache" in getattr(app_module, "PWA_HEADERS", {}).get("cache-control", "no-cache")
    internal = re.search(r"@(\w+) path /metrics\b", text)
    assert internal and re.search(rf"respond @{internal.group(1)} 404", text)
    assert re.search(r"^\s*encode [^\n{]*\bgzip\b", text, flags=re.M)
    assert re.search(r"^\s*tls ", text, flags=re.M)
    assert "text/event-stream" not in text, "compressing the SSE stream would hold alerts back"


def caddy_json() -> dict:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("no caddy binary here: the Caddyfile is checked as text only")
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as home:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": home, "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home}
        done = subprocess.run([caddy, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                              capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def walk_routes(routes: list[dict]):
    for route in routes:
        yield route
        for handler in route.get("handle", []):
            yield from walk_routes(handler.get("routes", []))


def test_caddy_adapts_the_caddyfile_as_intended():
    config = caddy_json()
    server = next(iter(config["apps"]["http"]["servers"].values()))
    routes = list(walk_routes(server["routes"]))

    def handlers_for(path: str) -> list[dict]:
        return [h for r in routes for m in r.get("match", [{}]) if path in m.get("path", []) for h in r["handle"]]

    sw = [h for h in handlers_for("/sw.js") if h["handler"] == "headers"]
    assert sw and "no-store" in sw[0]["response"]["set"]["Cache-Control"][0] and sw[0]["response"]["deferred"]
    metrics = handlers_for("/metrics")
    assert metrics and metrics[0]["handler"] == "static_response" and metrics[0]["status_code"] == 404
    order = [h["handler"] for r in routes for h in r.get("handle", [])]
    assert order.index("static_response") < order.index("reverse_proxy"), "/metrics must be answered first"
    proxy = next(h for r in routes for h in r.get("handle", []) if h["handler"] == "reverse_proxy")
    assert int(proxy["dynamic_upstreams"]["port"]) == app_port(compose_app_containers()[0].env)
    assert proxy["flush_interval"] == -1
    encode = next(h for r in routes for h in r.get("handle", []) if h["handler"] == "encode")
    assert "gzip" in encode["encodings"]
    policies = config["apps"]["tls"]["automation"]["policies"]
    assert policies[0]["issuers"][0]["module"] == "internal", "the default is Caddy's internal CA"


def body_limit_bytes(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)\s*([kKmMgG]i?[bB]?)?", text.strip()).groups()
    unit = (unit or "").lower().rstrip("b")
    base = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}
    return int(number) * base[unit]


def test_proxies_accept_the_largest_bodies_the_api_accepts():
    largest = max(MAX_REPORT_BODY, MAX_IMPORT_BODY)
    caddy = re.search(r"request_body \{[^}]*max_size (\S+)", caddyfile_text())
    assert caddy and body_limit_bytes(caddy.group(1)) >= largest
    for ingress in k8s_of_kind("Ingress"):
        nginx = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
        # nginx reads "40m" as 40 MiB
        assert body_limit_bytes(nginx.replace("m", "Mi")) >= largest


def test_graceful_shutdown_outlasts_the_api_drain_and_a_job_lease():
    drain = uvicorn_drain_s()
    for c in APP_CONTAINERS:
        if c.command == "api":
            pre_stop = 0.0
            if c.k8s is not None:
                command = c.k8s["lifecycle"]["preStop"]["exec"]["command"]
                assert command[0] == "sleep"
                pre_stop = float(command[1])
            assert c.grace_s > pre_stop + drain, f"{c.where}: grace {c.grace_s}s < preStop + uvicorn's {drain}s drain"
        elif c.command == "worker":
            assert c.grace_s >= lease_s(c.env), f"{c.where}: grace {c.grace_s}s is shorter than a job lease"
    dockerfile = dict(dockerfile_stages()[-1])
    assert dockerfile["STOPSIGNAL"] == "SIGTERM"


def test_api_deployment_has_probes_resources_and_a_disruption_budget():
    api = next(tpl for name, tpl in pod_specs() if name == "gridrider-api")
    labels = api["metadata"]["labels"]
    container = api["spec"]["containers"][0]
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    for kind in ("PodDisruptionBudget",):
        assert any(labels_match(d["spec"]["selector"]["matchLabels"], labels) for d in k8s_of_kind(kind))
    hpa = k8s_of_kind("HorizontalPodAutoscaler")[0]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "gridrider-api" and hpa["spec"]["minReplicas"] >= 2
    deployment = next(d for d in k8s_of_kind("Deployment") if d["metadata"]["name"] == "gridrider-api")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    service = next(d for d in k8s_of_kind("Service") if d["metadata"]["name"] == "gridrider-api")
    assert labels_match(service["spec"]["selector"], labels)


def test_every_workload_runs_restricted():
    """The namespace enforces Pod Security `restricted`; a pod that breaks it would never start."""
    for name, template in pod_specs():
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert context["readOnlyRootFilesystem"] is True, name
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{name}: a read-only root needs a writable /tmp"
        for volume in pod.get("volumes", []):
            claim = volume.get("persistentVolumeClaim")
            if claim:
                assert any(d["metadata"]["name"] == claim["claimName"] for d in k8s_of_kind("PersistentVolumeClaim"))


def test_migrate_and_app_run_the_same_image():
    images = []
    for part in ("migrate", "app"):
        kustomization = load_docs(K8S / part / "kustomization.yaml")[0]
        images.append(kustomization["images"])
    assert images[0] == images[1]


# ── the image ───────────────────────────────────────────────────────────────────────────────────

def test_dockerfile_is_multi_stage_hash_locked_and_non_root():
    stages = dockerfile_stages()
    assert len(stages) >= 2
    builder, runtime = stages[0], stages[-1]
    runs = " ".join(rest for word, rest in builder if word == "RUN")
    assert re.search(r"pip install [^&]*--require-hashes[^&]*-r \S*requirements\.lock", runs)
    copies = [rest for word, rest in runtime if word == "COPY"]
    assert any("--from=" in c and "/opt/venv" in c for c in copies), "runtime takes the venv from the builder"
    runtime_runs = " ".join(rest for word, rest in runtime if word == "RUN")
    assert "pip install" not in runtime_runs and "gcc" not in runtime_runs and "build-essential" not in runtime_runs
    user = dict(runtime)["USER"].split(":")[0]
    assert user not in ("root", "0")
    for word, rest in runtime + builder:
        if word in ("ENV", "ARG"):
            assert not re.search(r"SECRET|PASSWORD|PRIVATE_KEY|TOKEN", rest.split("=")[0] if word == "ARG" else rest), (
                f"{word} {rest}: secrets are never baked into the image")


def dockerignored(path: str) -> bool:
    ignored = False
    for raw in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = PurePosixPath(path).parts
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        hit = any(fnmatch.fnmatchcase(p, pattern) for p in prefixes)
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
        if hit:
            ignored = not negate
    return ignored


def test_build_context_holds_what_the_dockerfile_copies_and_nothing_secret():
    for word, rest in dockerfile_instructions():
        if word == "COPY" and "--from=" not in rest:
            sources = [s for s in rest.split() if not s.startswith("--")][:-1]
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
                assert not dockerignored(source), f"COPY {source}: excluded by .dockerignore"
    for private in (".venv/bin/python", "var/secrets/session_secret", "deploy/.env", "deploy/secrets/session_secret",
                    ".git/config", "tests/conftest.py", "backend/gridrider/__pycache__/cli.cpython-311.pyc"):
        assert dockerignored(private), f"{private} would be sent to the Docker daemon"


def test_image_layout_lets_the_app_find_the_pwa():
    stages = dockerfile_stages()
    copies = {}
    for word, rest in stages[-1]:
        if word == "COPY":
            parts = [p for p in rest.split() if not p.startswith("--")]
            copies[parts[0]] = parts[-1]
    backend, pwa = PurePosixPath(copies["/app/backend"]), PurePosixPath(copies["pwa"])
    # app.PWA_DIR is parents[2] of backend/gridrider/app.py, + "pwa"
    relative = Path(app_module.__file__).resolve().relative_to(REPO / "backend")
    assert (backend / relative.as_posix()).parents[2] / "pwa" == pwa
    assert app_module.PWA_DIR == REPO / "pwa" and (REPO / "pwa" / "index.html").exists()
    pth = re.search(r"echo (\S+) > /opt/venv/lib/python3\.11/site-packages/\S+\.pth", " ".join(
        rest for _, rest in stages[0]))
    assert pth and PurePosixPath(pth.group(1)) == backend
    assert LAUNCHER.read_text().startswith("#!/opt/venv/bin/python\n")
    assert f"python{sys.version_info.major}.{sys.version_info.minor}" == "python3.11", "image and tests: 3.11"


@pytest.mark.parametrize("argv", [["--help"], ["api", "--help"], ["worker", "--help"], ["migrate", "--help"]],
                         ids=["gridrider", "api", "worker", "migrate"])
def test_entry_points_run_from_the_project_virtualenv(argv, tmp_path):
    gridrider = Path(sys.executable).parent / "gridrider"
    assert gridrider.exists(), f"{gridrider}: the console script of `pip install -e .`"
    done = subprocess.run([str(gridrider), *argv], capture_output=True, text=True, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: gridrider")


@pytest.fixture(scope="module")
def image_like_venv(tmp_path_factory) -> Path:
    """A fresh venv laid out as the image's: a .pth naming backend/, deploy/image/gridrider as the script.

    The locked dependencies come from this test run's own site-packages, added as a plain path, so
    its .pth files (the editable install of gridrider among them) are not processed.
    """
    venv = tmp_path_factory.mktemp("image") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = venv / "lib" / "python3.11" / "site-packages"
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "gridrider.pth").write_text("\n".join([str(REPO / "backend"), *sorted(deps)]) + "\n")
    return venv


@pytest.mark.parametrize("argv", [["--help"], ["api", "--help"], ["worker", "--help"], ["migrate", "--help"]],
                         ids=["gridrider", "api", "worker", "migrate"])
def test_image_entry_point_runs_from_a_plain_virtualenv(argv, image_like_venv, tmp_path):
    done = subprocess.run([str(image_like_venv / "bin" / "python"), str(LAUNCHER), *argv], capture_output=True,
                          text=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: gridrider")


def test_plain_virtualenv_finds_the_source_tree_not_an_install(image_like_venv, tmp_path):
    probe = ("import sys, gridrider, gridrider.app as a; "
             "print(sys.prefix); print(gridrider.__file__); print(a.PWA_DIR)")
    done = subprocess.run([str(image_like_venv / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                          cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, timeout=120, check=True)
    prefix, package, pwa = done.stdout.split("\n")[:3]
    assert Path(prefix) == image_like_venv
    assert Path(package) == REPO / "backend" / "gridrider" / "__init__.py"
    assert Path(pwa) == REPO / "pwa"


# ── no secrets in tracked files ─────────────────────────────────────────────────────────────────

def test_no_secret_values_in_the_manifests():
    for secret in k8s_of_kind("Secret"):
        assert "data" not in secret, "no base64 secrets in the repository"
        for key, value in secret["stringData"].items():
            assert "CHANGE_ME" in value, f"Secret key {key} holds something other than a placeholder"
    kustomized = [r for part in ("config", "migrate", "app")
                  for r in load_docs(K8S / part / "kustomization.yaml")[0]["resources"]]
    assert not any("secret" in r for r in kustomized), "the example Secret must never be applied over the real one"
    for where, env in [("compose.env", read_env_file(DEPLOY / "compose.env")),
                       *[(f"ConfigMap {d['metadata']['name']}", d["data"]) for d in k8s_of_kind("ConfigMap")]]:
        assert not set(env) & (SECRET_ENV_NAMES | {"DATABASE_URL", "REDIS_URL"}), f"{where} holds a secret value"
    text = COMPOSE.read_text(encoding="utf-8")
    for match in re.finditer(r"^\s*([A-Z_]*(?:PASSWORD|SECRET)[A-Z_]*):\s*(\S+)", text, flags=re.M):
        assert match.group(2).startswith("${"), f"compose.yaml: {match.group(1)} is not taken from deploy/.env"
    ignored = (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()
    assert "/.env" in ignored and "/secrets/" in ignored
    tracked = subprocess.run(["git", "ls-files", "deploy"], capture_output=True, text=True, cwd=REPO).stdout.split()
    assert not [t for t in tracked if t.startswith("deploy/secrets/") or t == "deploy/.env"]


# ── tools that need more than this machine may have ─────────────────────────────────────────────

def test_kustomizations_build():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl here: kustomize builds are not checked")
    for part in ("config", "migrate", "app"):
        done = subprocess.run([kubectl, "kustomize", str(K8S / part)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        docs = [d for d in yaml.safe_load_all(done.stdout) if d]
        assert docs and all(d["metadata"].get("namespace") == "gridrider" for d in docs if d["kind"] != "Namespace")
        for doc in docs:
            for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                assert ":" in container["image"] and "/" in container["image"], "kustomize sets the registry image"


def test_docker_compose_config(tmp_path):
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker binary here: `docker compose config` not run")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"`docker compose` is not available here ({probe.stderr.strip() or probe.stdout.strip()}); "
                    "compose.yaml is checked by the other tests")
    env = {**os.environ, **COMPOSE_SAMPLE_ENV}
    done = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
