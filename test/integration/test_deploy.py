#!/usr/bin/env python3
"""Checks the deployment files under deploy/ against what docs/deploy.md promises.

    test_deploy.py --pg2qdrant BUILD/pg2qdrant [--deploy DIR] [--no-self-test]

Parses every YAML file under deploy/ (multi-document), deploy/Dockerfile, the root
.dockerignore, deploy/pg2qdrant.ini and deploy/systemd/pg2qdrant.service, and checks:
one consumer per slot (replicas 1, Recreate), probes on /livez and /readyz that can reach
the endpoint server, the hardening of every container of every workload (sidecar and
CronJob included), secrets only from Secrets, monitors that select the Service / pod port,
the native sidecar, the check-lag CronJob, kustomizations that list every manifest, the
Dockerfile's stages, and that every INI (deploy/pg2qdrant.ini and each one embedded in a
ConfigMap) loads with `pg2qdrant check-config` without configuration errors.

Then, unless --no-self-test, it proves the checks are real: it applies a list of
mutations (Recreate removed, a sidecar without readOnlyRootFilesystem, a literal DSN, ...)
to copies of the files and requires each to make at least one check fail.

Needs python3-yaml.  Prints one line per check and 'N passed, N failed'; exit 0 when
nothing failed.
"""
import argparse
import copy
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

HTTP_PORT = 9930
RUNTIME_LIBS = ["libpq5", "libcurl4", "libjansson4", "libinih1", "libmicrohttpd12", "ca-certificates"]
SECRET_ENV = re.compile(r"(DSN|API_KEY|PASSWORD|PASSFILE|TOKEN|SECRET)", re.I)
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
SPEC_KEYS = {
    "source": ["dsn", "slot", "publication", "create_slot", "create_publication", "status_interval"],
    "qdrant": ["url", "api_key", "timeout", "create_collections"],
    "sync": ["snapshot", "batch_points", "batch_bytes", "flush_interval", "max_inflight", "on_error",
             "dead_letter_file", "shutdown_timeout"],
    "http": ["listen"],
}
TABLE_KEYS = ["collection", "id", "id_mode", "vector", "vector.*", "payload"]


# ---------------------------------------------------------------------------
# Loading

class Files:
    """Everything the checks look at, as plain data (deep-copyable for mutations)."""

    def __init__(self, deploy):
        self.deploy = deploy
        self.yaml = {}        # path relative to deploy/ -> [documents]
        self.yaml_errors = {}  # path -> parse error
        for root, dirs, names in os.walk(deploy):
            dirs.sort()
            for n in sorted(names):
                if n.endswith((".yaml", ".yml")):
                    p = os.path.join(root, n)
                    rel = os.path.relpath(p, deploy)
                    try:
                        with open(p, encoding="utf-8") as f:
                            self.yaml[rel] = [d for d in yaml.safe_load_all(f) if d is not None]
                    except yaml.YAMLError as e:
                        self.yaml_errors[rel] = str(e)
        self.dockerfile = read(os.path.join(deploy, "Dockerfile"))
        self.dockerignore = read(os.path.join(os.path.dirname(os.path.abspath(deploy)), ".dockerignore"))
        if self.dockerignore is None:
            self.dockerignore = read(os.path.join(deploy, ".dockerignore"))
        self.example_ini = read(os.path.join(deploy, "pg2qdrant.ini"))
        self.systemd = read(os.path.join(deploy, "systemd", "pg2qdrant.service"))
        self.install_deps = read(os.path.join(REPO, "scripts", "install-deps.sh"))

    def docs(self, kind=None):
        for rel, docs in self.yaml.items():
            for d in docs:
                if isinstance(d, dict) and (kind is None or d.get("kind") == kind):
                    yield rel, d


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


# ---------------------------------------------------------------------------
# Helpers

def g(obj, *path, default=None):
    for p in path:
        if isinstance(obj, dict):
            obj = obj.get(p)
        elif isinstance(obj, list) and isinstance(p, int) and p < len(obj):
            obj = obj[p]
        else:
            return default
        if obj is None:
            return default
    return obj


def pod_spec(doc):
    kind = doc.get("kind")
    if kind == "Pod":
        return doc.get("spec") or {}
    if kind == "CronJob":
        return g(doc, "spec", "jobTemplate", "spec", "template", "spec", default={})
    return g(doc, "spec", "template", "spec", default={})


def pod_labels(doc):
    if doc.get("kind") == "Pod":
        return g(doc, "metadata", "labels", default={})
    if doc.get("kind") == "CronJob":
        return g(doc, "spec", "jobTemplate", "spec", "template", "metadata", "labels", default={})
    return g(doc, "spec", "template", "metadata", "labels", default={})


def all_containers(spec):
    return [("initContainer", c) for c in spec.get("initContainers") or []] + \
           [("container", c) for c in spec.get("containers") or []]


def is_pg2qdrant(c):
    return "pg2qdrant" in str(c.get("image", "")).split("/")[-1]


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def ini_parse(text):
    """[(section, key, value, line)] with pg2qdrant's comment rules (docs/configuration.md)."""
    out, section = [], None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("["):
            section = line[1:line.index("]")] if "]" in line else line[1:]
            out.append((section, None, None, n))
            continue
        m = re.match(r"([^=:]+?)\s*[=:]\s*(.*)$", line)
        if m:
            value = re.split(r"\s;", m.group(2), maxsplit=1)[0].strip()
            out.append((section, m.group(1).strip(), value, n))
    return out


def ini_get(text, section, key, default=None):
    for s, k, v, _ in ini_parse(text or ""):
        if s == section and k == key:
            return v
    return default


def ini_size(v):
    m = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", v or "")
    units = {"": 1, "b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40}
    return int(m.group(1)) * units[m.group(2).lower()] if m and m.group(2).lower() in units else None


def ini_duration_ms(v):
    m = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", v or "")
    units = {"": 1, "ms": 1, "s": 1000, "min": 60000, "h": 3600000, "d": 86400000}
    return int(m.group(1)) * units[m.group(2).lower()] if m and m.group(2).lower() in units else None


def k8s_quantity(q):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGTE]i?|k|m)?", str(q))
    if not m:
        return None
    mult = {None: 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 1 << 10, "Mi": 1 << 20,
            "Gi": 1 << 30, "Ti": 1 << 40, "m": 1e-3}[m.group(2)]
    return float(m.group(1)) * mult


def config_path_of(c):
    args = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
    for i, a in enumerate(args):
        if a in ("-c", "--config") and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--config="):
            return a.split("=", 1)[1]
    for e in c.get("env") or []:
        if e.get("name") == "PG2QDRANT_CONFIG" and "value" in e:
            return e["value"]
    return "/etc/pg2qdrant/pg2qdrant.ini"


def mount_for(c, spec, path):
    """(volume, key inside the volume) for a file path, via the container's mounts."""
    vols = {v.get("name"): v for v in spec.get("volumes") or []}
    for m in c.get("volumeMounts") or []:
        mp = m.get("mountPath", "").rstrip("/")
        if m.get("subPath") and mp == path:
            return vols.get(m.get("name")), m["subPath"]
        if path.startswith(mp + "/") and not m.get("subPath"):
            return vols.get(m.get("name")), path[len(mp) + 1:]
    return None, None


def dockerfile_stages(text):
    """[{'from': image, 'name': alias, 'ins': [(INSTR, args)]}] with continuations joined."""
    stages, cur = [], None
    joined = re.sub(r"\\\n", " ", text or "")
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            parts = rest.split()
            cur = {"from": parts[0] if parts else "", "name": parts[2] if len(parts) > 2 else None, "ins": []}
            stages.append(cur)
        elif cur is not None:
            cur["ins"].append((instr, rest.strip()))
    return stages


# ---------------------------------------------------------------------------
# The checks

class Checks:
    def __init__(self, pg2qdrant, verbose=True):
        self.bin = pg2qdrant
        self.verbose = verbose
        self.results = []  # (name, ok, detail)

    def check(self, name, ok, detail=""):
        self.results.append((name, bool(ok), detail))
        if self.verbose:
            print(f"{'ok  ' if ok else 'FAIL'} {name}" + ("" if ok or not detail else f": {detail}"))
        return ok

    def failed(self):
        return [r for r in self.results if not r[1]]

    # -- check-config -------------------------------------------------------
    def check_config(self, ini_text):
        """(exit code, stderr): check-config against unreachable servers, so that only
        connection problems can appear besides configuration errors."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG2QDRANT_", "PG"))}
        env.update(PG2QDRANT_SOURCE_DSN="host=127.0.0.1 port=1 dbname=deploytest connect_timeout=3",
                   PG2QDRANT_QDRANT_URL="http://127.0.0.1:1")
        with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as f:
            f.write(ini_text)
        try:
            p = subprocess.run([self.bin, "check-config", "-c", f.name], capture_output=True, text=True,
                               env=env, timeout=60)
            return p.returncode, p.stdout + p.stderr
        finally:
            os.unlink(f.name)

    def ini_loads(self, name, ini_text):
        if ini_text is None:
            return self.check(name, False, "no INI")
        rc, out = self.check_config(ini_text)
        bad = [ln for ln in out.splitlines() if "configuration error" in ln]
        connected = "problem:" in out or "configuration OK" in out
        sanitizer = "Sanitizer" in out or "runtime error" in out
        return self.check(name, rc in (0, 2) and not bad and connected and not sanitizer,
                          f"exit {rc}: {out.strip()[:600]}")

    # -- all of them --------------------------------------------------------
    def run(self, F):
        self.check_yaml(F)
        self.check_kustomizations(F)
        self.check_deployment(F)
        self.check_workload_security(F)
        self.check_secrets(F)
        self.check_service_and_monitors(F)
        self.check_cronjob(F)
        self.check_sidecar(F)
        self.check_inis(F)
        self.check_dockerfile(F)
        self.check_systemd(F)

    def check_yaml(self, F):
        self.check("deploy/ has YAML manifests", F.yaml, f"none under {F.deploy}")
        for rel in sorted(F.yaml_errors):
            self.check(f"{rel} parses", False, F.yaml_errors[rel])
        for rel, docs in sorted(F.yaml.items()):
            bad = [d for d in docs if not (isinstance(d, dict) and d.get("apiVersion") and d.get("kind") and
                   (d.get("kind") == "Kustomization" or g(d, "metadata", "name")))]
            self.check(f"{rel}: {len(docs)} document(s) with apiVersion, kind, metadata.name",
                       docs and not bad, f"{len(bad)} incomplete document(s)")

    def check_kustomizations(self, F):
        kdirs = sorted({posixpath.dirname(rel) for rel, d in F.docs("Kustomization")})
        self.check("a kustomization.yaml exists", kdirs, "none")
        listed = set()
        for kd in kdirs:
            k = next(d for rel, d in F.docs("Kustomization") if posixpath.dirname(rel) == kd)
            res = [str(r) for r in k.get("resources") or []]
            missing = [r for r in res if posixpath.normpath(posixpath.join(kd, r)) not in F.yaml
                       and not os.path.isdir(os.path.join(F.deploy, kd, r))]
            listed |= {posixpath.normpath(posixpath.join(kd, r)) for r in res}
            self.check(f"{kd}/kustomization.yaml: every resource exists", not missing, f"missing {missing}")
        manifests = [rel for rel, docs in F.yaml.items()
                     if rel.startswith("kubernetes/") and not any(d.get("kind") == "Kustomization" for d in docs)]
        unlisted = sorted(set(manifests) - listed)
        self.check("every manifest under deploy/kubernetes is listed in a kustomization", not unlisted,
                   f"not listed: {unlisted}")

    def deployments(self, F):
        return [d for _, d in F.docs("Deployment") if any(is_pg2qdrant(c) for _, c in all_containers(pod_spec(d)))]

    def pg2qdrant_ini(self, F, doc, c):
        """The INI a pg2qdrant container reads, resolved through its mounts to a ConfigMap."""
        spec = pod_spec(doc)
        vol, key = mount_for(c, spec, config_path_of(c))
        cm_name = g(vol, "configMap", "name")
        if not cm_name:
            return None, f"{config_path_of(c)} is not mounted from a ConfigMap"
        for _, cm in F.docs("ConfigMap"):
            if g(cm, "metadata", "name") == cm_name:
                text = g(cm, "data", key)
                return (text, "") if text else (None, f"ConfigMap {cm_name} has no key {key}")
        return None, f"no ConfigMap {cm_name} under deploy/"

    def check_deployment(self, F):
        deps = self.deployments(F)
        if not self.check("a Deployment runs pg2qdrant", deps, "none"):
            return
        for d in deps:
            n = f"Deployment {g(d, 'metadata', 'name')}"
            spec = pod_spec(d)
            self.check(f"{n}: replicas 1 (one consumer per slot)", d.get("spec", {}).get("replicas") == 1,
                       f"replicas {g(d, 'spec', 'replicas')}")
            self.check(f"{n}: strategy Recreate", g(d, "spec", "strategy", "type") == "Recreate",
                       f"strategy {g(d, 'spec', 'strategy')}")
            for _, c in all_containers(spec):
                if not is_pg2qdrant(c):
                    continue
                cn = f"{n}/{c.get('name')}"
                ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
                self.check(f"{cn}: port {HTTP_PORT} named http", ports.get("http") == HTTP_PORT, f"ports {ports}")
                for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
                    hg = g(c, probe, "httpGet", default={})
                    port_ok = hg.get("port") in ("http", HTTP_PORT)
                    self.check(f"{cn}: {probe} GET {path} on the http port", hg.get("path") == path and port_ok,
                               f"{probe} {c.get(probe)}")
                req, lim = g(c, "resources", "requests", default={}), g(c, "resources", "limits", default={})
                self.check(f"{cn}: resources requests cpu+memory and a memory limit",
                           "cpu" in req and "memory" in req and "memory" in lim, f"resources {c.get('resources')}")
                ini, why = self.pg2qdrant_ini(F, d, c)
                self.check(f"{cn}: config from a ConfigMap", ini, why)
                vol, _ = mount_for(c, spec, "/var/lib/pg2qdrant/dead-letter.jsonl")
                self.check(f"{cn}: /var/lib/pg2qdrant is an emptyDir or PVC volume (read-only root fs)",
                           vol and ("emptyDir" in vol or "persistentVolumeClaim" in vol), f"volume {vol}")
                if ini:
                    inflight = ini_size(ini_get(ini, "sync", "max_inflight", "64MB"))
                    batch = ini_size(ini_get(ini, "sync", "batch_bytes", "8MB"))
                    need = inflight + 2 * batch + (64 << 20)
                    have = k8s_quantity(lim.get("memory", "0"))
                    self.check(f"{cn}: memory limit >= max_inflight + 2 x batch_bytes + 64Mi",
                               have and have >= need, f"limit {lim.get('memory')} < {need} bytes")
                    grace = spec.get("terminationGracePeriodSeconds", 30)
                    shut = ini_duration_ms(ini_get(ini, "sync", "shutdown_timeout", "20s"))
                    self.check(f"{cn}: terminationGracePeriodSeconds > shutdown_timeout",
                               grace * 1000 > shut, f"grace {grace}s, shutdown_timeout {shut}ms")

    def check_workload_security(self, F):
        found = False
        for rel, d in F.docs():
            if d.get("kind") not in WORKLOADS:
                continue
            spec = pod_spec(d)
            psc = spec.get("securityContext") or {}
            for where, c in all_containers(spec):
                found = True
                sc = c.get("securityContext") or {}
                n = f"{d['kind']} {g(d, 'metadata', 'name')}/{c.get('name')}"
                run_as_user = sc.get("runAsUser", psc.get("runAsUser"))
                problems = []
                if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
                    problems.append("runAsNonRoot not true")
                if not isinstance(run_as_user, int) or run_as_user == 0:
                    problems.append(f"runAsUser {run_as_user!r} (need a non-zero UID)")
                if sc.get("readOnlyRootFilesystem") is not True:
                    problems.append("readOnlyRootFilesystem not true")
                if sc.get("allowPrivilegeEscalation") is not False:
                    problems.append("allowPrivilegeEscalation not false")
                if sc.get("privileged"):
                    problems.append("privileged")
                if "ALL" not in (g(sc, "capabilities", "drop") or []):
                    problems.append("capabilities.drop lacks ALL")
                if g(sc, "capabilities", "add"):
                    problems.append(f"capabilities.add {g(sc, 'capabilities', 'add')}")
                if g(sc, "seccompProfile", "type", default=g(psc, "seccompProfile", "type")) != "RuntimeDefault":
                    problems.append("seccompProfile not RuntimeDefault")
                self.check(f"{n} ({where}): non-root, read-only root fs, no escalation, drop ALL, RuntimeDefault",
                           not problems, "; ".join(problems))
        self.check("workloads found for the security checks", found, "no pod templates")

    def check_secrets(self, F):
        secrets = {g(s, "metadata", "name"): s for _, s in F.docs("Secret")}
        for name, s in secrets.items():
            self.check(f"Secret {name}: placeholder values in stringData", s.get("stringData") and not s.get("data"),
                       "use stringData with placeholders")
        for rel, d in F.docs():
            if d.get("kind") not in WORKLOADS:
                continue
            spec = pod_spec(d)
            vols = {v.get("name"): v for v in spec.get("volumes") or []}
            for _, c in all_containers(spec):
                n = f"{d['kind']} {g(d, 'metadata', 'name')}/{c.get('name')}"
                bad = []
                for e in c.get("env") or []:
                    ename = e.get("name", "")
                    if not SECRET_ENV.search(ename):
                        continue
                    ref = g(e, "valueFrom", "secretKeyRef")
                    if ref:
                        s = secrets.get(ref.get("name"))
                        keys = set((s or {}).get("stringData") or {}) | set((s or {}).get("data") or {})
                        if ref.get("key") not in keys:
                            bad.append(f"{ename}: Secret {ref.get('name')} key {ref.get('key')} not defined")
                    elif ename.endswith("_FILE") and "value" in e:
                        vol, key = mount_for(c, spec, str(e["value"]))
                        sname = g(vol, "secret", "secretName")
                        if not sname:
                            bad.append(f"{ename}: {e['value']} is not on a Secret volume")
                        elif sname in secrets:
                            s = secrets[sname]
                            if key not in (set(s.get("stringData") or {}) | set(s.get("data") or {})):
                                bad.append(f"{ename}: Secret {sname} has no key {key}")
                    else:
                        bad.append(f"{ename} is not from a Secret (literal or ConfigMap value)")
                for v in vols.values():
                    sname = g(v, "secret", "secretName")
                    if sname and sname not in secrets:
                        bad.append(f"volume {v.get('name')}: Secret {sname} not under deploy/")
                if c.get("env") or is_pg2qdrant(c):
                    self.check(f"{n}: secret env only from Secrets", not bad, "; ".join(bad))
                if is_pg2qdrant(c):
                    names = {e.get("name") for e in c.get("env") or []}
                    self.check(f"{n}: the PostgreSQL credentials come from a Secret",
                               names & {"PG2QDRANT_SOURCE_DSN", "PG2QDRANT_SOURCE_DSN_FILE", "PGPASSWORD",
                                        "PGPASSFILE"}, f"env {sorted(names)}")
        for rel, cm in F.docs("ConfigMap"):
            for key, text in (cm.get("data") or {}).items():
                if not key.endswith(".ini"):
                    continue
                n = f"ConfigMap {g(cm, 'metadata', 'name')} {key}"
                leaks = [f"line {ln}: {k}" for s, k, v, ln in ini_parse(text)
                         if (k in ("dsn",) and re.search(r"password\s*=|://[^/@\s]*:[^/@\s]*@", v or ""))
                         or (k == "api_key" and v)]
                self.check(f"{n}: no password or API key in the INI", not leaks, "; ".join(leaks))

    def check_service_and_monitors(self, F):
        services = [d for _, d in F.docs("Service")]
        templates = [d for _, d in F.docs() if d.get("kind") in WORKLOADS]
        deps = self.deployments(F)
        for d in deps:
            labels = pod_labels(d)
            svc = [s for s in services if selects(g(s, "spec", "selector"), labels)]
            if not self.check(f"a Service selects Deployment {g(d, 'metadata', 'name')}", svc, "none"):
                continue
            s = svc[0]
            ports = g(s, "spec", "ports", default=[])
            self.check(f"Service {g(s, 'metadata', 'name')}: port http -> the container's http port",
                       any(p.get("name") == "http" and p.get("targetPort") in ("http", HTTP_PORT) for p in ports),
                       f"ports {ports}")
            other = [g(t, "metadata", "name") for t in templates
                     if t is not d and selects(g(s, "spec", "selector"), pod_labels(t))]
            self.check(f"Service {g(s, 'metadata', 'name')} selects no other workload's pods", not other,
                       f"also selects {other}")
        monitors = list(F.docs("ServiceMonitor")) + list(F.docs("PodMonitor"))
        self.check("a ServiceMonitor or PodMonitor (monitoring.coreos.com/v1)",
                   monitors and all(m.get("apiVersion") == "monitoring.coreos.com/v1" for _, m in monitors),
                   "none, or not monitoring.coreos.com/v1")
        for _, m in monitors:
            n = f"{m['kind']} {g(m, 'metadata', 'name')}"
            sel = g(m, "spec", "selector", "matchLabels", default={})
            if m["kind"] == "ServiceMonitor":
                eps = g(m, "spec", "endpoints", default=[])
                hit = [s for s in services if selects(sel, g(s, "metadata", "labels", default={}))]
                ok = any(e.get("port") in {p.get("name") for p in g(s, "spec", "ports", default=[])}
                         and e.get("path", "/metrics") == "/metrics" for s in hit for e in eps)
                self.check(f"{n}: selects a Service and scrapes /metrics on one of its named ports", ok,
                           f"selector {sel}, endpoints {eps}, services matched {[g(s, 'metadata', 'name') for s in hit]}")
            else:
                eps = g(m, "spec", "podMetricsEndpoints", default=[])
                hit = [t for t in templates if selects(sel, pod_labels(t))]
                ok = any(e.get("port") in {p.get("name") for _, c in all_containers(pod_spec(t))
                                           for p in c.get("ports") or [] if is_pg2qdrant(c)}
                         and e.get("path", "/metrics") == "/metrics" for t in hit for e in eps)
                self.check(f"{n}: selects a pod template and scrapes /metrics on a pg2qdrant container port", ok,
                           f"selector {sel}, endpoints {eps}, pods matched {[g(t, 'metadata', 'name') for t in hit]}")

    def check_cronjob(self, F):
        jobs = [d for _, d in F.docs("CronJob")
                if any(is_pg2qdrant(c) for _, c in all_containers(pod_spec(d)))]
        if not self.check("a CronJob runs pg2qdrant", jobs, "none"):
            return
        ok = False
        for d in jobs:
            for _, c in all_containers(pod_spec(d)):
                args = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
                if "check-lag" in args:
                    i = args.index("--output") if "--output" in args else -1
                    ok = ok or (0 <= i < len(args) - 1 and args[i + 1] == "json") or "--output=json" in args
            n = f"CronJob {g(d, 'metadata', 'name')}"
            self.check(f"{n}: concurrencyPolicy Forbid", g(d, "spec", "concurrencyPolicy") == "Forbid",
                       f"{g(d, 'spec', 'concurrencyPolicy')}")
            self.check(f"{n}: restartPolicy Never (the exit code is the status)",
                       pod_spec(d).get("restartPolicy") == "Never", f"{pod_spec(d).get('restartPolicy')}")
        self.check("a CronJob runs `pg2qdrant check-lag --output json`", ok, "no such args")

    def check_sidecar(self, F):
        found = False
        for _, d in F.docs("StatefulSet"):
            spec = pod_spec(d)
            mains = [c for c in spec.get("containers") or []]
            for c in spec.get("initContainers") or []:
                if not is_pg2qdrant(c):
                    continue
                found = True
                n = f"StatefulSet {g(d, 'metadata', 'name')}/{c.get('name')}"
                self.check(f"{n}: native sidecar (initContainer, restartPolicy Always)",
                           c.get("restartPolicy") == "Always", f"restartPolicy {c.get('restartPolicy')}")
                self.check(f"{n}: next to a postgres container",
                           any("postgres" in str(m.get("image", "")) for m in mains), "no postgres container")
                hg = g(c, "livenessProbe", "httpGet", default={})
                self.check(f"{n}: livenessProbe GET /livez", hg.get("path") == "/livez", f"{c.get('livenessProbe')}")
                self.check(f"{n}: no readiness/startup probe (they would gate PostgreSQL's pod)",
                           not c.get("readinessProbe") and not c.get("startupProbe"), "remove them")
                ini, why = self.pg2qdrant_ini(F, d, c)
                self.check(f"{n}: config from a ConfigMap", ini, why)
                dsn = ini_get(ini, "source", "dsn", "") if ini else ""
                host = re.search(r"(?:^|\s)host\s*=\s*(\S+)", dsn or "")
                self.check(f"{n}: connects over localhost",
                           host and host.group(1) in ("127.0.0.1", "localhost", "::1"), f"dsn {dsn!r}")
        self.check("a StatefulSet runs pg2qdrant as a native sidecar", found, "none")

    def check_inis(self, F):
        # Every pod that probes pg2qdrant's endpoints must make it listen on the pod IP.
        for _, d in F.docs():
            if d.get("kind") not in WORKLOADS:
                continue
            for _, c in all_containers(pod_spec(d)):
                if not is_pg2qdrant(c) or not any(g(c, p, "httpGet") for p in
                                                  ("livenessProbe", "readinessProbe", "startupProbe")):
                    continue
                ini, _ = self.pg2qdrant_ini(F, d, c)
                listen = ini_get(ini, "http", "listen", "127.0.0.1:9930") if ini else None
                env = {e.get("name"): e.get("value") for e in c.get("env") or []}
                listen = env.get("PG2QDRANT_HTTP_LISTEN", listen)
                host, _, port = (listen or "").rpartition(":")
                self.check(f"{d['kind']} {g(d, 'metadata', 'name')}/{c.get('name')}: [http] listen {listen} "
                           f"is reachable by the kubelet's probes",
                           port == str(HTTP_PORT) and host not in ("127.0.0.1", "localhost", "[::1]", ""),
                           "listen on 0.0.0.0:9930 (or the pod IP)")
        for rel, cm in F.docs("ConfigMap"):
            for key, text in (cm.get("data") or {}).items():
                if key.endswith(".ini"):
                    self.ini_loads(f"ConfigMap {g(cm, 'metadata', 'name')} {key} loads with check-config "
                                   f"(no configuration errors)", text)
        self.ini_loads("deploy/pg2qdrant.ini loads with check-config (no configuration errors)", F.example_ini)
        if F.example_ini is not None:
            have = {(s, k) for s, k, _, _ in ini_parse(F.example_ini) if k}
            missing = [f"[{s}] {k}" for s, ks in SPEC_KEYS.items() for k in ks if (s, k) not in have]
            tkeys = {("vector.*" if k.startswith("vector.") else k) for s, k, _, _ in ini_parse(F.example_ini)
                     if k and s and s.startswith("table ")}
            missing += [f"[table ...] {k}" for k in TABLE_KEYS if k not in tkeys]
            self.check("deploy/pg2qdrant.ini sets every key of SPEC §2", not missing, f"missing {missing}")

    def check_dockerfile(self, F):
        if not self.check("deploy/Dockerfile exists", F.dockerfile is not None, "missing"):
            return
        stages = dockerfile_stages(F.dockerfile)
        if not self.check("Dockerfile is multi-stage", len(stages) >= 2, f"{len(stages)} stage(s)"):
            return
        build, rt = stages[0], stages[-1]
        runs = " ".join(a for i, a in build["ins"] if i == "RUN")
        self.check("Dockerfile build stage: FROM debian:bookworm", build["from"] in ("debian:bookworm", "debian:12"),
                   build["from"])
        m = re.search(r"scripts/install-deps\.sh(\s+(--[a-z-]+))?", runs)
        self.check("Dockerfile build stage runs scripts/install-deps.sh", m, "install-deps.sh not run")
        if m and m.group(2):
            self.check(f"scripts/install-deps.sh accepts {m.group(2)}",
                       F.install_deps and re.search(r"^\s*" + re.escape(m.group(2)) + r"\)", F.install_deps, re.M),
                       "option not handled by the script")
        self.check("Dockerfile build stage: cmake Release with -DP2Q_TESTS=OFF, then install",
                   "-DP2Q_TESTS=OFF" in runs and "-DCMAKE_BUILD_TYPE=Release" in runs and
                   re.search(r"cmake --install|make install", runs), runs[:300])
        self.check("Dockerfile runtime stage: FROM debian:bookworm-slim", rt["from"] in ("debian:bookworm-slim",
                   "debian:12-slim"), rt["from"])
        rt_runs = " ".join(a for i, a in rt["ins"] if i == "RUN")
        missing = [p for p in RUNTIME_LIBS if not re.search(r"(^|\s)" + re.escape(p) + r"(\s|$)", rt_runs)]
        dev = re.findall(r"\S+-dev\b", rt_runs)
        self.check("Dockerfile runtime stage installs only the runtime libraries", not missing and not dev,
                   f"missing {missing}, dev packages {dev}")
        self.check("Dockerfile runtime stage copies the binary from the build stage",
                   any(i == "COPY" and "--from=" in a and "pg2qdrant" in a for i, a in rt["ins"]), "no COPY --from")
        users = [a for i, a in rt["ins"] if i == "USER"]
        user = users[-1].split(":")[0] if users else "root"
        self.check("Dockerfile runtime stage: USER is a numeric non-root UID", user.isdigit() and int(user) != 0,
                   f"USER {user}")
        ep = [a for i, a in rt["ins"] if i == "ENTRYPOINT"]
        cmd = [a for i, a in rt["ins"] if i == "CMD"]
        self.check('Dockerfile: ENTRYPOINT ["pg2qdrant"], CMD ["run"]',
                   ep and yaml.safe_load(ep[-1]) == ["pg2qdrant"] and cmd and yaml.safe_load(cmd[-1]) == ["run"],
                   f"ENTRYPOINT {ep} CMD {cmd}")
        self.check(f"Dockerfile: EXPOSE {HTTP_PORT}", any(i == "EXPOSE" and str(HTTP_PORT) in a.split()
                                                           for i, a in rt["ins"]), "no EXPOSE")
        di = [ln.strip() for ln in (F.dockerignore or "").splitlines() if ln.strip() and not ln.startswith("#")]
        self.check(".dockerignore excludes build directories and .git",
                   any(p.startswith("build") for p in di) and ".git" in di, f"{di}")

    def check_systemd(self, F):
        u = F.systemd
        if not self.check("deploy/systemd/pg2qdrant.service exists", u is not None, "missing"):
            return
        want = ["NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                "CapabilityBoundingSet=", "RestrictAddressFamilies=", "SystemCallFilter=", "StateDirectory="]
        lines = [ln.strip() for ln in u.splitlines()]
        missing = [w for w in want if not any(ln.startswith(w) for ln in lines)]
        self.check("systemd unit: hardening options", not missing, f"missing {missing}")
        self.check("systemd unit: ExecStart runs `pg2qdrant run`",
                   any(re.match(r"ExecStart=\S*pg2qdrant run\b", ln) for ln in lines), "no ExecStart")
        self.check("systemd unit: no restart on exit 2 (config error)",
                   any(re.match(r"RestartPreventExitStatus=.*\b2\b", ln) for ln in lines), "missing")


# ---------------------------------------------------------------------------
# Self-test: each mutation must make a check fail.

def find(F, kind, pred=lambda d: True):
    for _, d in F.docs(kind):
        if pred(d):
            return d
    raise LookupError(kind)


def pg_container(d, init=False):
    return next(c for c in pod_spec(d).get("initContainers" if init else "containers") or [] if is_pg2qdrant(c))


def sidecar_sts(F):
    return find(F, "StatefulSet", lambda d: any(is_pg2qdrant(c) for c in pod_spec(d).get("initContainers") or []))


def set_ini(F, cm_pred, fn):
    cm = find(F, "ConfigMap", cm_pred)
    key = next(k for k in cm["data"] if k.endswith(".ini"))
    cm["data"][key] = fn(cm["data"][key])


MUTATIONS = [
    ("Deployment replicas 2", lambda F: find(F, "Deployment")["spec"].__setitem__("replicas", 2)),
    ("Deployment RollingUpdate", lambda F: find(F, "Deployment")["spec"].__setitem__(
        "strategy", {"type": "RollingUpdate"})),
    ("readiness on /livez", lambda F: pg_container(find(F, "Deployment"))["readinessProbe"]["httpGet"]
     .__setitem__("path", "/livez")),
    ("no liveness probe", lambda F: pg_container(find(F, "Deployment")).pop("livenessProbe")),
    ("sidecar without readOnlyRootFilesystem", lambda F: pg_container(sidecar_sts(F), init=True)
     ["securityContext"].pop("readOnlyRootFilesystem")),
    ("CronJob allows privilege escalation", lambda F: pg_container(find(F, "CronJob"))["securityContext"]
     .__setitem__("allowPrivilegeEscalation", True)),
    ("postgres container keeps capabilities", lambda F: next(
        c for c in pod_spec(sidecar_sts(F))["containers"] if not is_pg2qdrant(c))["securityContext"]
     .pop("capabilities")),
    ("no seccomp anywhere in the Deployment", lambda F: (
        pod_spec(find(F, "Deployment"))["securityContext"].pop("seccompProfile", None),
        pg_container(find(F, "Deployment"))["securityContext"].pop("seccompProfile", None))),
    ("runs as root", lambda F: (pod_spec(find(F, "Deployment"))["securityContext"].__setitem__("runAsUser", 0),
                                pg_container(find(F, "Deployment"))["securityContext"].__setitem__("runAsUser", 0))),
    ("literal DSN in the Deployment", lambda F: pg_container(find(F, "Deployment")).setdefault("env", []).append(
        {"name": "PG2QDRANT_SOURCE_DSN", "value": "host=db user=cdc password=hunter2"})),
    ("password in a ConfigMap INI", lambda F: set_ini(F, lambda d: "ini" in str(d.get("data")), lambda t: t.replace(
        "[source]", "[source]\ndsn = host=db user=cdc password=hunter2", 1))),
    ("ServiceMonitor on a wrong port", lambda F: find(F, "ServiceMonitor")["spec"]["endpoints"][0]
     .__setitem__("port", "metrics")),
    ("ServiceMonitor selects nothing", lambda F: find(F, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
     .__setitem__("app.kubernetes.io/name", "nope")),
    ("sidecar as a plain container", lambda F: pg_container(sidecar_sts(F), init=True).pop("restartPolicy")),
    ("sidecar over the network", lambda F: set_ini(F, lambda d: "127.0.0.1 port=5432" in str(d.get("data")),
                                                   lambda t: t.replace("host=127.0.0.1", "host=db.example", 1))),
    ("CronJob without --output json", lambda F: pg_container(find(F, "CronJob")).__setitem__(
        "args", ["check-lag"])),
    ("no dead-letter volume", lambda F: pg_container(find(F, "Deployment"))["volumeMounts"].__setitem__(
        slice(None), [m for m in pg_container(find(F, "Deployment"))["volumeMounts"]
                      if m["mountPath"] != "/var/lib/pg2qdrant"])),
    ("listen on loopback in the Deployment's ConfigMap", lambda F: set_ini(
        F, lambda d: "0.0.0.0:9930" in str(d.get("data")) and "127.0.0.1 port" not in str(d.get("data")),
        lambda t: t.replace("0.0.0.0:9930", "127.0.0.1:9930"))),
    ("a bad key in deploy/pg2qdrant.ini", lambda F: setattr(F, "example_ini", F.example_ini.replace(
        "batch_points", "bach_points", 1))),
    ("a bad value in a ConfigMap INI", lambda F: set_ini(F, lambda d: "ini" in str(d.get("data")),
                                                          lambda t: re.sub(r"status_interval = \S+",
                                                                           "status_interval = ten", t, count=1))),
    ("Dockerfile runs as root", lambda F: setattr(F, "dockerfile", re.sub(r"(?m)^USER .*$", "USER root",
                                                                          F.dockerfile))),
    ("Dockerfile without install-deps.sh", lambda F: setattr(F, "dockerfile", F.dockerfile.replace(
        "sh scripts/install-deps.sh --build-only", "apt-get install -y cmake"))),
    ("Dockerfile ENTRYPOINT sh", lambda F: setattr(F, "dockerfile", re.sub(r"(?m)^ENTRYPOINT .*$",
                                                                           'ENTRYPOINT ["sh", "-c"]', F.dockerfile))),
    ("manifest missing from kustomization", lambda F: find(F, "Kustomization")["resources"].pop()),
]


def self_test(F, pg2qdrant):
    failures = 0
    for name, mutate in MUTATIONS:
        m = copy.deepcopy(F)
        try:
            mutate(m)
        except (LookupError, KeyError, StopIteration, AttributeError, IndexError) as e:
            print(f"FAIL self-test '{name}': cannot apply the mutation ({type(e).__name__}: {e})")
            failures += 1
            continue
        c = Checks(pg2qdrant, verbose=False)
        c.run(m)
        caught = [r[0] for r in c.failed()]
        if caught:
            print(f"ok   self-test '{name}' is caught by: {caught[0]}" +
                  (f" (+{len(caught) - 1} more)" if len(caught) > 1 else ""))
        else:
            print(f"FAIL self-test '{name}': no check failed")
            failures += 1
    return len(MUTATIONS) - failures, failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg2qdrant", required=True, help="the pg2qdrant binary (for check-config)")
    ap.add_argument("--deploy", default=os.path.join(REPO, "deploy"), help="the deploy/ directory")
    ap.add_argument("--no-self-test", action="store_true", help="skip the mutation self-test")
    a = ap.parse_args()

    F = Files(a.deploy)
    c = Checks(a.pg2qdrant)
    c.run(F)
    kubectl = shutil.which("kubectl")
    for rel, _ in F.docs("Kustomization"):
        d = os.path.join(a.deploy, os.path.dirname(rel))
        if not kubectl:
            print(f"SKIP kubectl kustomize {os.path.dirname(rel)}: no kubectl on PATH")
            continue
        p = subprocess.run([kubectl, "kustomize", d], capture_output=True, text=True, timeout=60)
        c.check(f"kubectl kustomize {os.path.dirname(rel)} builds", p.returncode == 0, p.stderr.strip()[:400])
    failed = len(c.failed())
    passed = len(c.results) - failed
    if not a.no_self_test and failed == 0:
        print("\nself-test: each mutation of the deploy files must fail a check")
        p, f = self_test(F, a.pg2qdrant)
        passed += p
        failed += f
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
