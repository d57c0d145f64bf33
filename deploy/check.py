#!/usr/bin/env python3
"""Checks of deploy/ that need no container engine and no cluster (run by deploy/check.sh).

  python3 deploy/check.py BINARY

Prints one line per finding, `ok:`, `pending:`, `note:` or `FAIL:`, and exits 1 if anything
failed. It checks that:
  - every YAML file parses (all documents);
  - every flag and DEEPCHAT_PROXY_* variable named anywhere in deploy/ exists in BINARY's --help
    (or is listed in pending-flags.txt), and every command line that runs the proxy (Dockerfile
    CMD, compose `command`, Kubernetes `args`, systemd ExecStart, examples in comments and
    README.md) puts each flag on the right side of the provider subcommand;
  - the binary accepts each of those command lines (with `--check` once it exists; until then by
    starting it on 127.0.0.1:0 and seeing that it is still up a moment later);
  - the health endpoints the probes use answer 200 (or are pending);
  - the Dockerfile, compose file, manifests, unit and nginx config agree with each other and with
    the binary: ports, uid, grace periods longer than the drain timeout, selectors, Secret names,
    security settings, the Deep Chat page settings;
  - the Docker build context (after Dockerfile.dockerignore) still holds the whole Cargo workspace
    and its lock file, checked with an empty CARGO_HOME so no local cache can hide a gap.
"""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
# The checker's own files name other tools' flags on purpose; they are not deployment material.
TOOLING = {"check.sh", "check.py", "check_live.py", "check_pages.mjs", "pending-flags.txt"}
IMAGE_NAME = "deepchat-proxy"
DEFAULT_CMD = ["demo"]
# The image's own ENV: the listen address lives here, not in CMD, so `docker run IMAGE openai …`
# (which replaces CMD) still listens on every interface.
IMAGE_LISTEN = "0.0.0.0:8080"
# Placeholders for the key variables a provider reads by default: `--check` fails on an unset key
# for a hosted provider, and the deployments get theirs from Secrets this check does not have.
FIXTURE_KEYS = {name: "sk-fixture-for-deploy-check" for name in (
    "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "COHERE_API_KEY",
    "AZURE_OPENAI_API_KEY", "OPENROUTER_API_KEY", "GROQ_API_KEY", "MISTRAL_API_KEY",
    "DEEPSEEK_API_KEY", "TOGETHER_API_KEY", "FIREWORKS_API_KEY")}

# Flags of other programs that deploy/ names (docker, cargo, useradd, kubectl, systemctl, install,
# docker compose, redis-server). A `--flag` in deploy/ must be the proxy's, pending, or one of these.
FOREIGN_FLAGS = {
    # Dockerfile / docker
    "--mount", "--chmod", "--from", "--interval", "--timeout", "--start-period", "--retries",
    "--rm", "--build", "--platform", "--tag",
    # cargo
    "--release", "--locked", "--package", "--bin", "--no-deps",
    # useradd / groupadd
    "--system", "--uid", "--gid", "--no-create-home", "--home-dir", "--shell",
    # kubectl / systemctl
    "--from-literal", "--now",
    # redis-server (kubernetes/redis.yaml)
    "--save", "--appendonly", "--maxmemory", "--maxmemory-policy",
}

results = {"ok": 0, "pending": 0, "FAIL": 0}


def say(kind, message):
    if kind in results:
        results[kind] += 1
    print(f"{kind}: {message}", flush=True)


def ok(message):
    say("ok", message)


def fail(message):
    say("FAIL", message)


def rel(path):
    return str(Path(path).relative_to(ROOT))


def deploy_files():
    """Every text file under deploy/ except the checker's own."""
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and path.name not in TOOLING and "__pycache__" not in path.parts:
            yield path


# --------------------------------------------------------------------------------------------
# The binary's command-line surface, read from its --help output.


def read_help(binary, *sub):
    out = subprocess.run([binary, *sub, "--help"], capture_output=True, text=True, check=True).stdout
    flags, commands, section, current = {}, [], None, None
    for line in out.splitlines():
        if re.match(r"^\S.*:$", line):
            section = line[:-1]
            continue
        if section == "Commands":
            m = re.match(r"^  (\S+)", line)
            if m and m.group(1) != "help":
                commands.append(m.group(1))
        elif section is not None:  # "Options" and clap's other headings ("Limits", …)
            m = re.match(r"^\s+(?:-\w, )?(--[a-z0-9-]+)(?: <([^>]+)>)?(.*)$", line)
            if m:
                current = flags[m.group(1)] = {"value": bool(m.group(2)), "text": m.group(3)}
            elif current is not None:
                current["text"] += " " + line.strip()
    for spec in flags.values():
        env = re.search(r"\[env: ([A-Z0-9_]+)=", spec["text"])
        default = re.search(r"\[default: ([^\]]*)\]", spec["text"])
        spec["env"] = env.group(1) if env else None
        spec["default"] = default.group(1) if default else None
    return {"flags": flags, "commands": commands}


def load_pending():
    pending = {"flag": set(), "env": set(), "endpoint": set()}
    for line in (DEPLOY / "pending-flags.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, kind = line.split()[:2]
        pending[kind].add(name)
    return pending


# --------------------------------------------------------------------------------------------
# Command lines that run the proxy.


class Invocation:
    def __init__(self, where, args, env=None):
        self.where = where
        self.args = list(args)
        self.env = dict(env or {})  # variables the deployment sets
        self.provider = None
        self.query = False  # --help / --version: valid without a provider, not run
        self.mounts = {}  # container path -> file names a volume puts there (Kubernetes)


def check_invocation(inv, helps, pending):
    """Walks the args as clap would: global flags, the provider, the provider's flags."""
    scope, i, good = "", 0, True
    args = inv.args
    while i < len(args):
        tok = args[i]
        if tok.startswith("--"):
            name, eq, _ = tok.partition("=")
            spec = helps[scope]["flags"].get(name)
            if spec is None and name in pending["flag"]:
                say("pending", f"{inv.where}: {name} (listed in pending-flags.txt)")
                nxt = args[i + 1] if i + 1 < len(args) else None
                if not eq and nxt is not None and not nxt.startswith("--") and nxt not in helps[""]["commands"]:
                    i += 1
            elif spec is None:
                owners = [s or "global" for s in helps if name in helps[s]["flags"]]
                where = f"'{scope}'" if scope else "global"
                hint = f"; it is a flag of: {', '.join(owners)}" if owners else ""
                fail(f"{inv.where}: {name} is not a {where} flag of the binary{hint}")
                good = False
            elif spec["value"] and not eq:
                if i + 1 >= len(args):
                    fail(f"{inv.where}: {name} needs a value")
                    good = False
                i += 1
        elif tok.startswith("-") and tok not in ("-h", "-V"):
            fail(f"{inv.where}: unknown short option {tok}")
            good = False
        elif not scope and tok in helps[""]["commands"]:
            scope = inv.provider = tok
        else:
            fail(f"{inv.where}: unexpected argument {tok!r} (after {' '.join(args[:i]) or 'nothing'})")
            good = False
        i += 1
    inv.query = any(a in ("-h", "--help", "-V", "--version") for a in args)
    if not inv.provider and not inv.query:
        fail(f"{inv.where}: no provider subcommand ({', '.join(helps['']['commands'])})")
        good = False
    if good:
        ok(f"{inv.where}: flags valid for their subcommand: {' '.join(inv.args)}")
    return good


def flag_value(inv, helps, flag):
    """The value a command line gives a flag: the flag, else its variable, else the default."""
    for i, tok in enumerate(inv.args):
        if tok == flag and i + 1 < len(inv.args):
            return inv.args[i + 1]
        if tok.startswith(flag + "="):
            return tok.split("=", 1)[1]
    for scope in ("", inv.provider or ""):
        spec = helps[scope]["flags"].get(flag)
        if spec:
            if spec["env"] and spec["env"] in inv.env:
                return inv.env[spec["env"]]
            return spec["default"]
    return None


def text_invocations(helps):
    """Command lines in prose: comments, README, examples (`deepchat-proxy[:tag] --flag …`)."""
    found = []
    starters = set(helps[""]["commands"])
    pattern = re.compile(r"(?<![\w.-])(?:[\w./-]*/)?" + re.escape(IMAGE_NAME) + r"(?::[\w.-]+)?[ \t]+(.*)")
    for path in deploy_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        lines = text.splitlines()
        # Join backslash continuations, also inside comments ("# a \" + "#   b").
        joined, buf, start = [], "", 0
        for n, line in enumerate(lines, 1):
            body = line
            if buf:
                body = re.sub(r"^\s*(#|//)?\s*", "", line)
            if body.rstrip().endswith("\\"):
                if not buf:
                    start = n
                buf += body.rstrip()[:-1] + " "
                continue
            joined.append((start if buf else n, buf + body))
            buf = ""
        for n, line in joined:
            for m in pattern.finditer(line):
                before = re.sub(r"^\s*(#|//)?", "", line[: m.start()]).rstrip()
                is_image = ":" in m.group(0).split()[0]
                if before and not is_image and not before.endswith(("&&", ";", "|", "`", "$", "(")):
                    continue  # a word in a sentence or another tool's argument, not a command
                rest = m.group(1).split("`", 1)[0]
                try:
                    tokens = shlex.split(rest, comments=True)
                except ValueError:
                    continue
                for stop in ("&&", "||", ";", "|", ">", "2>&1"):
                    if stop in tokens:
                        tokens = tokens[: tokens.index(stop)]
                if not tokens or not (tokens[0].startswith("--") or tokens[0] in starters):
                    continue
                found.append(Invocation(f"{rel(path)}:{n}", tokens))
    return found


# --------------------------------------------------------------------------------------------
# Files.


def load_yaml_files():
    docs = {}
    for path in deploy_files():
        if path.suffix in (".yaml", ".yml"):
            try:
                docs[path] = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
                ok(f"{rel(path)}: parses ({len(docs[path])} document(s))")
            except yaml.YAMLError as err:
                fail(f"{rel(path)}: YAML does not parse: {err}")
    return docs


def dockerfile_instructions(path):
    out, buf = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        full = (buf + stripped).strip()
        buf = ""
        keyword, _, rest = full.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def parse_duration(value):
    """systemd / compose durations: 40, 40s, 1min, 1m30s, 2m."""
    value = str(value).strip()
    if re.fullmatch(r"\d+", value):
        return int(value)
    total, units = 0, {"h": 3600, "min": 60, "m": 60, "s": 1, "sec": 1}
    for number, unit in re.findall(r"(\d+)\s*(min|sec|h|m|s)", value):
        total += int(number) * units[unit]
    return total


def image_base(image):
    last = str(image).rsplit("/", 1)[-1]
    return last.split("@", 1)[0].split(":", 1)[0]


def port_of(addr):
    return int(str(addr).rsplit(":", 1)[1])


# --------------------------------------------------------------------------------------------
# Dockerfile and build context.


def image_env():
    """ENV of the Dockerfile's final stage (`ENV NAME=value …` form)."""
    ins = dockerfile_instructions(DEPLOY / "Dockerfile")
    final = ins[max(i for i, (k, _) in enumerate(ins) if k == "FROM"):]
    env = {}
    for keyword, rest in final:
        if keyword == "ENV":
            for pair in shlex.split(rest):
                name, eq, value = pair.partition("=")
                if eq:
                    env[name] = value
    return env


def check_dockerfile():
    path = DEPLOY / "Dockerfile"
    ins = dockerfile_instructions(path)
    stages = [i for i, (k, _) in enumerate(ins) if k == "FROM"]
    final = ins[stages[-1]:]
    by = {}
    for k, v in final:
        by.setdefault(k, []).append(v)
    if any("rust:1-bookworm" in v for k, v in ins if k == "FROM") and len(stages) >= 2:
        ok("Dockerfile: multi-stage, rust:1-bookworm builder")
    else:
        fail("Dockerfile: expected a rust:1-bookworm build stage and a runtime stage")
    if any("--release" in v and "--locked" in v for k, v in ins if k == "RUN"):
        ok("Dockerfile: builds with --release --locked")
    else:
        fail("Dockerfile: no `cargo build --release --locked`")
    user = (by.get("USER") or [""])[-1]
    uid = user.split(":")[0]
    if uid.isdigit() and int(uid) != 0:
        ok(f"Dockerfile: runs as numeric non-root user {user}")
    else:
        fail(f"Dockerfile: USER must be a numeric non-root uid (Kubernetes runAsNonRoot), got {user!r}")
    entry = json.loads((by.get("ENTRYPOINT") or ["null"])[-1])
    cmd = json.loads((by.get("CMD") or ["null"])[-1])
    if isinstance(entry, list) and len(entry) == 1 and entry[0].endswith("/" + IMAGE_NAME):
        ok(f"Dockerfile: ENTRYPOINT is the binary ({entry[0]})")
    else:
        fail(f"Dockerfile: ENTRYPOINT must be the binary alone, in exec form; got {entry!r}")
    if cmd == DEFAULT_CMD:
        ok(f"Dockerfile: default CMD {cmd}")
    else:
        fail(f"Dockerfile: default CMD should be {DEFAULT_CMD}, got {cmd!r}")
    listen = image_env().get("DEEPCHAT_PROXY_LISTEN")
    if listen == IMAGE_LISTEN:
        ok(f"Dockerfile: ENV DEEPCHAT_PROXY_LISTEN={listen}, so provider arguments keep the address")
    else:
        fail(f"Dockerfile: set ENV DEEPCHAT_PROXY_LISTEN={IMAGE_LISTEN} (got {listen!r}): a CMD "
             "replaced by provider arguments would otherwise listen on 127.0.0.1, unreachable")
    exposed = " ".join(by.get("EXPOSE", [])).split()
    if listen and f"{port_of(listen)}" in exposed:
        ok(f"Dockerfile: EXPOSE {' '.join(exposed)} matches the image's --listen")
    else:
        fail(f"Dockerfile: EXPOSE {exposed} does not match the image's --listen port")
    if any("CARGO_PROFILE_RELEASE_STRIP=symbols" in v for k, v in ins if k in ("RUN", "ENV")):
        ok("Dockerfile: the shipped binary is stripped")
    else:
        fail("Dockerfile: build with CARGO_PROFILE_RELEASE_STRIP=symbols so the image ships a stripped binary")
    health = (by.get("HEALTHCHECK") or [""])[-1]
    if health.startswith("NONE") or "CMD" not in health:
        fail("Dockerfile: no HEALTHCHECK")
    else:
        ok("Dockerfile: HEALTHCHECK present")
    return {"uid": int(uid) if uid.isdigit() else None, "cmd": cmd, "copies": [
        v for k, v in ins if k in ("COPY", "ADD") and "--from=" not in v]}


def dockerignore_matcher(path):
    patterns = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        pat = os.path.normpath(line[1:] if exclusion else line).lstrip("/")
        regex, i = "", 0
        while i < len(pat):
            if pat.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pat.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pat[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pat[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pat[i]), i + 1
        patterns.append((re.compile(regex + r"\Z"), exclusion))

    def excluded(relpath):
        parts = relpath.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        matched = False
        for regex, exclusion in patterns:
            if matched != exclusion:  # only an exception can re-include, only a pattern exclude
                continue
            if any(regex.match(p) for p in prefixes):
                matched = not exclusion
        return matched

    return excluded


def check_build_context(docker):
    ignore = DEPLOY / "Dockerfile.dockerignore"
    example = DEPLOY / "dockerignore.example"
    if ignore.read_bytes() == example.read_bytes():
        ok("Dockerfile.dockerignore and dockerignore.example are the same list")
    else:
        fail("deploy/Dockerfile.dockerignore and deploy/dockerignore.example differ: keep them equal")
    excluded = dockerignore_matcher(ignore)
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    files = [f for f in listed if f and (ROOT / f).is_file() and not excluded(f)]
    for spec in docker["copies"]:
        sources = [s for s in shlex.split(spec) if not s.startswith("--")][:-1]
        for src in sources:
            if src == ".":
                continue
            if excluded(src) or not (ROOT / src).exists():
                fail(f"Dockerfile: COPY source {src} is missing from the build context")
            else:
                ok(f"Dockerfile: COPY source {src} is in the build context")
    if excluded("deploy/Dockerfile"):
        fail("the ignore file excludes deploy/Dockerfile (the legacy builder then cannot find it)")
    with tempfile.TemporaryDirectory(prefix="deploy-context-") as tmp:
        for f in files:
            dest = Path(tmp, f)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest)
        # The workspace's own manifests only (--no-deps), with an empty CARGO_HOME and no
        # network: the answer must not depend on which crates this machine's cache happens to
        # hold (a Linux-only cache lacks the Windows-only crates a full resolve would read).
        # That the lock file resolves --locked is proven on the real tree by check.sh's
        # `cargo build --locked`; here it is enough that the context carries the same lock
        # file and every workspace package it names.
        with tempfile.TemporaryDirectory(prefix="deploy-cargo-home-") as cargo_home:
            meta = subprocess.run(
                ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
                cwd=tmp, capture_output=True, text=True,
                env={**os.environ, "CARGO_HOME": cargo_home})
        if meta.returncode != 0:
            fail("build context: `cargo metadata --no-deps` fails on the filtered tree:\n"
                 + meta.stderr.strip())
            return
        data = json.loads(meta.stdout)
        members = {p["name"] for p in data["packages"] if p["id"] in data["workspace_members"]}
        lock = Path(tmp, "Cargo.lock")
        if not lock.is_file() or lock.read_bytes() != (ROOT / "Cargo.lock").read_bytes():
            fail("build context: Cargo.lock is missing or differs (docker build runs --locked)")
            return
        # Packages without a `source` in the lock file are the workspace's own path crates.
        locked_paths = set()
        for block in lock.read_text().split("[[package]]")[1:]:
            name = re.search(r'^name = "([^"]+)"', block, re.M)
            if name and not re.search(r"^source = ", block, re.M):
                locked_paths.add(name.group(1))
        if locked_paths - members:
            fail("build context: Cargo.lock names workspace crates the context lacks: "
                 + ", ".join(sorted(locked_paths - members)))
            return
        ok(f"build context: {len(files)} files, Cargo workspace loads with an empty cargo cache "
           f"and carries the lock file (members: {', '.join(sorted(members))})")
        missing = []
        for rs in Path(tmp).rglob("*.rs"):
            for m in re.finditer(r'include_(?:str|bytes)!\(\s*"([^"]+)"', rs.read_text(errors="replace")):
                if not (rs.parent / m.group(1)).exists():
                    missing.append(f"{rs.relative_to(tmp)} includes {m.group(1)}")
        if missing:
            fail("build context lacks files that sources include: " + "; ".join(missing))


# --------------------------------------------------------------------------------------------
# Compose.


def compose_invocations(docs):
    path = DEPLOY / "compose.yaml"
    found = []
    for doc in docs.get(path, []):
        for name, svc in (doc.get("services") or {}).items():
            build = svc.get("build") or {}
            if isinstance(build, str):
                build = {"context": build}
            if build:
                context = (path.parent / build.get("context", ".")).resolve()
                dockerfile = context / build.get("dockerfile", "Dockerfile")
                if dockerfile.is_file() and (context / "Cargo.toml").is_file():
                    ok(f"compose.yaml: {name} builds {rel(dockerfile)} from the repository root")
                else:
                    fail(f"compose.yaml: {name}: build context/dockerfile {dockerfile} not found")
            for vol in svc.get("volumes") or []:
                src = vol.split(":", 1)[0] if isinstance(vol, str) else vol.get("source")
                if src.startswith("."):
                    if (path.parent / src).exists():
                        ok(f"compose.yaml: {name}: volume source {src} exists")
                    else:
                        fail(f"compose.yaml: {name}: volume source {src} does not exist")
            if not (image_base(svc.get("image", "")) == IMAGE_NAME or
                    (isinstance(build, dict) and build.get("dockerfile") == "deploy/Dockerfile")):
                continue
            command = svc.get("command")
            command = shlex.split(command) if isinstance(command, str) else command
            env = svc.get("environment") or {}
            if isinstance(env, list):
                env = dict(e.split("=", 1) if "=" in e else (e, "x") for e in env)
            inv = Invocation(f"compose.yaml: services.{name}.command", command or DEFAULT_CMD,
                             {**image_env(), **env})
            inv.compose = svc
            found.append(inv)
    return found


def check_compose(inv, helps):
    svc = inv.compose
    listen = flag_value(inv, helps, "--listen")
    ports = [str(p).rsplit(":", 1)[-1] for p in svc.get("ports") or []]
    if str(port_of(listen)) in ports and not listen.startswith("127."):
        ok(f"{inv.where}: listens on {listen}, published as {svc.get('ports')}")
    else:
        fail(f"{inv.where}: --listen {listen} is not reachable through ports {svc.get('ports')}")
    if inv.provider == "demo":
        ok(f"{inv.where}: demo mode")
    else:
        fail(f"{inv.where}: the compose file should run the demo provider")
    drain = int(flag_value(inv, helps, "--drain-timeout"))
    grace = parse_duration(svc.get("stop_grace_period", "10s"))
    if grace > drain:
        ok(f"{inv.where}: stop_grace_period {grace}s > --drain-timeout {drain}s")
    else:
        fail(f"{inv.where}: stop_grace_period {grace}s must exceed --drain-timeout {drain}s")
    return listen


def check_page(path, text, helps, expected_url=None):
    stop_key = helps[""]["flags"]["--stop-key"]["default"]
    script = helps["demo"]["flags"]["--deep-chat-script"]["default"]
    checks = {
        f"loads Deep Chat from {script}": f'src="{script}"' in text,
        "websocket: true": re.search(r"websocket:\s*true", text) is not None,
        f'stream simulation "{stop_key}" (the proxy\'s --stop-key)':
            re.search(r"simulation:\s*\"" + re.escape(stop_key) + "\"", text) is not None,
        "errorMessages.displayServiceErrorMessages: true":
            re.search(r"displayServiceErrorMessages:\s*true", text) is not None,
    }
    if expected_url:
        checks[f'connect url "{expected_url}"'] = f'url: "{expected_url}"' in text
    for what, good in checks.items():
        (ok if good else fail)(f"{path}: {what}")


# --------------------------------------------------------------------------------------------
# Kubernetes.


def k8s_invocations(docs):
    found = []
    for path, items in docs.items():
        if "kubernetes" not in path.parts:
            continue
        for doc in items:
            spec = ((doc.get("spec") or {}).get("template") or {}).get("spec")
            if not spec:
                continue
            for c in spec.get("containers", []):
                if image_base(c.get("image", "")) != IMAGE_NAME:
                    continue
                where = f"{rel(path)}: {doc['kind']}/{doc['metadata']['name']} container {c['name']}"
                if c.get("command"):
                    fail(f"{where}: sets `command`, which replaces the image's ENTRYPOINT; use `args`")
                env = image_env()
                for e in c.get("env") or []:
                    env[e["name"]] = e.get("value", "x")
                inv = Invocation(where, c.get("args") or DEFAULT_CMD, env)
                inv.k8s = (path, doc, spec, c)
                volumes = {v["name"]: v for v in spec.get("volumes") or []}
                for mount in c.get("volumeMounts") or []:
                    volume = volumes.get(mount["name"], {})
                    source = volume.get("secret") or volume.get("configMap") or {}
                    inv.mounts[mount["mountPath"]] = [i["path"] for i in source.get("items") or []]
                found.append(inv)
    return found


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_k8s_objects(docs):
    secrets = {}
    for path, items in docs.items():
        if "kubernetes" not in path.parts:
            continue
        for doc in items:
            for key in ("apiVersion", "kind"):
                if key not in doc:
                    fail(f"{rel(path)}: a document has no {key}")
            if not (doc.get("metadata") or {}).get("name"):
                fail(f"{rel(path)}: {doc.get('kind')} has no metadata.name")
            if doc.get("kind") == "Secret":
                secrets[doc["metadata"]["name"]] = set((doc.get("stringData") or {}) | (doc.get("data") or {}))
    SECRETS.update(secrets)
    for path, items in docs.items():
        if "kubernetes" not in path.parts:
            continue
        workloads = {d["metadata"]["name"]: d for d in items if d.get("kind") == "Deployment"}
        for name, dep in workloads.items():
            where = f"{rel(path)}: Deployment/{name}"
            selector = dep["spec"]["selector"].get("matchLabels", {})
            labels = dep["spec"]["template"]["metadata"].get("labels", {})
            (ok if matches(selector, labels) else fail)(f"{where}: selector matches the pod labels")
            pod = dep["spec"]["template"]["spec"]
            ports = {p.get("name") for c in pod["containers"] for p in c.get("ports", [])}
            for c in pod["containers"]:
                for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                    port = ((c.get(probe) or {}).get("httpGet") or {}).get("port")
                    if isinstance(port, str) and port not in ports:
                        fail(f"{where}: {c['name']} {probe} uses unknown port name {port}")
                for e in c.get("env") or []:
                    ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                    if ref:
                        if ref["key"] in secrets.get(ref["name"], set()):
                            ok(f"{where}: {c['name']} env {e['name']} from Secret {ref['name']}/{ref['key']} "
                               "(secret.example.yaml)")
                        else:
                            fail(f"{where}: {c['name']} env {e['name']} refers to Secret "
                                 f"{ref['name']}/{ref['key']}, which secret.example.yaml does not define")
        for doc in items:
            kind, name = doc.get("kind"), doc["metadata"]["name"]
            where = f"{rel(path)}: {kind}/{name}"
            if kind == "Service":
                targets = [d for d in workloads.values()
                           if matches(doc["spec"].get("selector"), d["spec"]["template"]["metadata"]["labels"])]
                if not targets:
                    fail(f"{where}: selector matches no Deployment in the file")
                    continue
                pod = targets[0]["spec"]["template"]["spec"]
                named = {p.get("name"): p["containerPort"] for c in pod["containers"] for p in c.get("ports", [])}
                for port in doc["spec"]["ports"]:
                    t = port.get("targetPort", port["port"])
                    good = t in named if isinstance(t, str) else t in named.values()
                    (ok if good else fail)(f"{where}: port {port['port']} -> {t} exists on "
                                           f"Deployment/{targets[0]['metadata']['name']}")
            elif kind == "HorizontalPodAutoscaler":
                ref = doc["spec"]["scaleTargetRef"]
                target = workloads.get(ref["name"]) if ref["kind"] == "Deployment" else None
                if not target:
                    fail(f"{where}: scaleTargetRef {ref['kind']}/{ref['name']} is not in the file")
                    continue
                cpu = [m for m in doc["spec"].get("metrics", [])
                       if m.get("type") == "Resource" and m["resource"]["name"] == "cpu"]
                (ok if cpu and doc["apiVersion"] == "autoscaling/v2" else fail)(
                    f"{where}: autoscaling/v2 on CPU")
                lacking = [c["name"] for c in target["spec"]["template"]["spec"]["containers"]
                           if not ((c.get("resources") or {}).get("requests") or {}).get("cpu")]
                if lacking:
                    fail(f"{where}: CPU utilization needs CPU requests on every container; missing: {lacking}")
                else:
                    ok(f"{where}: every container of Deployment/{ref['name']} requests CPU")
                if doc["spec"].get("minReplicas", 1) < 2:
                    fail(f"{where}: minReplicas below 2 leaves the PodDisruptionBudget nothing to keep")
            elif kind == "PodDisruptionBudget":
                targets = [d for d in workloads.values()
                           if matches(doc["spec"]["selector"].get("matchLabels"),
                                      d["spec"]["template"]["metadata"]["labels"])]
                (ok if targets else fail)(f"{where}: selector matches a Deployment in the file")


def check_k8s_proxy(inv, helps, dockerfile):
    path, doc, spec, c = inv.k8s
    where = inv.where
    listen = flag_value(inv, helps, "--listen")
    named = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    # The probes go where the health endpoints are: --metrics-listen when given.
    health = flag_value(inv, helps, "--metrics-listen") if "--metrics-listen" in helps[""]["flags"] else None
    alone = len(spec.get("containers", [])) == 1
    for flag, addr in (("--listen", listen), ("--metrics-listen", health)):
        if not addr:
            continue
        loopback = addr.startswith("127.") or addr.startswith("[::1]") or addr.startswith("localhost:")
        if flag == "--listen" and loopback and health and not alone:
            # A sidecar's chat port serves only its pod's frontend; the probes use --metrics-listen.
            ok(f"{where}: --listen {addr} is loopback: only the pod's frontend reaches the chat")
            continue
        if loopback:
            fail(f"{where}: {flag} {addr} is loopback; the kubelet and the Service use the pod IP")
        if port_of(addr) in named.values():
            ok(f"{where}: {flag} {addr} matches a containerPort")
        else:
            fail(f"{where}: {flag} {addr} is not a containerPort ({named})")
    port = port_of(health or listen)
    # A pod of its own is ready when the proxy is (/readyz); a sidecar's pod also serves the page,
    # so there readiness may stay on /healthz.
    for probe, paths in (("livenessProbe", ["/healthz"]),
                         ("readinessProbe", ["/readyz"] if alone else ["/readyz", "/healthz"])):
        get = (c.get(probe) or {}).get("httpGet") or {}
        p = get.get("port")
        p = named.get(p) if isinstance(p, str) else p
        if get.get("path") in paths and p == port:
            ok(f"{where}: {probe} GET {get['path']} on port {port}")
        else:
            fail(f"{where}: {probe} should GET {' or '.join(paths)} on port {port} "
                 f"({'--metrics-listen' if health else '--listen'}), has {get}")
    drain = int(flag_value(inv, helps, "--drain-timeout"))
    command = ((((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command") or [])
    pre_stop = int(command[1]) if len(command) == 2 and command[0] == "sleep" else 0
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if grace > drain + pre_stop:
        ok(f"{where}: terminationGracePeriodSeconds {grace} > preStop {pre_stop}s + --drain-timeout {drain}s")
    else:
        fail(f"{where}: terminationGracePeriodSeconds {grace} must exceed preStop {pre_stop}s + "
             f"--drain-timeout {drain}s")
    key_file = flag_value(inv, helps, "--api-key-file") if "--api-key-file" in helps[inv.provider]["flags"] else None
    if key_file:
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        source = None
        for mount in c.get("volumeMounts") or []:
            if key_file.startswith(mount["mountPath"].rstrip("/") + "/"):
                name = key_file[len(mount["mountPath"].rstrip("/")) + 1:]
                secret = volumes.get(mount["name"], {}).get("secret") or {}
                items = {i["path"]: i["key"] for i in secret.get("items") or []}
                source = (secret.get("secretName"), items.get(name, name) if items or not secret else name)
        if source and source[1] in SECRETS.get(source[0], set()):
            ok(f"{where}: --api-key-file {key_file} is Secret {source[0]}/{source[1]} (secret.example.yaml)")
        else:
            fail(f"{where}: --api-key-file {key_file} is not a key of a mounted Secret that "
                 f"secret.example.yaml defines (found {source})")
        fs_group = (spec.get("securityContext") or {}).get("fsGroup")
        run_as = {**(spec.get("securityContext") or {}), **(c.get("securityContext") or {})}
        if fs_group is None and run_as.get("runAsUser", 0) != 0:
            fail(f"{where}: the key file is root's; set the pod's fsGroup so uid {run_as.get('runAsUser')} "
                 "can read it")
    pod_sc, sc = spec.get("securityContext") or {}, c.get("securityContext") or {}
    merged = {**pod_sc, **sc}
    wanted = {
        "runAsNonRoot": merged.get("runAsNonRoot") is True,
        "readOnlyRootFilesystem": sc.get("readOnlyRootFilesystem") is True,
        "allowPrivilegeEscalation: false": sc.get("allowPrivilegeEscalation") is False,
        "capabilities.drop [ALL]": "ALL" in ((sc.get("capabilities") or {}).get("drop") or []),
    }
    bad = [k for k, v in wanted.items() if not v]
    (fail if bad else ok)(f"{where}: securityContext " + (f"lacks {bad}" if bad else "runAsNonRoot, "
                          "readOnlyRootFilesystem, no privilege escalation, drops ALL capabilities"))
    uid = merged.get("runAsUser")
    if uid is not None and dockerfile["uid"] is not None and uid != dockerfile["uid"]:
        fail(f"{where}: runAsUser {uid} differs from the image's USER {dockerfile['uid']}")
    requests = (c.get("resources") or {}).get("requests") or {}
    limits = (c.get("resources") or {}).get("limits") or {}
    if requests.get("cpu") and requests.get("memory") and limits.get("memory"):
        ok(f"{where}: resource requests and limits set")
    else:
        fail(f"{where}: set resources.requests.cpu/memory and resources.limits.memory")
    return listen


def check_sidecar_nginx(docs, sidecar_listen):
    """The sidecar's frontend sends /chat to the proxy's port over loopback."""
    path = DEPLOY / "kubernetes" / "sidecar.yaml"
    for doc in docs.get(path, []):
        if doc.get("kind") == "ConfigMap" and "default.conf" in (doc.get("data") or {}):
            conf = doc["data"]["default.conf"]
            m = re.search(r"proxy_pass\s+http://127\.0\.0\.1:(\d+)", conf)
            if m and sidecar_listen and int(m.group(1)) == port_of(sidecar_listen):
                ok(f"{rel(path)}: frontend proxies /chat to the sidecar's port {m.group(1)}")
            else:
                fail(f"{rel(path)}: frontend proxy_pass {m and m.group(0)} does not reach the sidecar "
                     f"(--listen {sidecar_listen})")
            check_nginx_text(f"{rel(path)} ConfigMap default.conf", conf)
            page = doc["data"].get("index.html")
            if page:
                check_page(f"{rel(path)} ConfigMap index.html", page, HELPS)


# --------------------------------------------------------------------------------------------
# systemd and nginx (syntax is checked by check.sh with systemd-analyze and nginx -t).


def read_env_file(path):
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip().strip('"')
    return env


class Unit:
    """A unit file's sections; a key set more than once keeps every value (SystemCallFilter=…)."""

    def __init__(self, text):
        self.sections, current = {}, None
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("[") and line.endswith("]"):
                current = self.sections.setdefault(line[1:-1], {})
                continue
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())

    def get(self, section, key, default=None):
        values = self.sections.get(section, {}).get(key)
        return values[-1] if values else default

    def all(self, section, key):
        return self.sections.get(section, {}).get(key, [])


def systemd_invocation():
    path = DEPLOY / "systemd" / "deepchat-proxy.service"
    unit = Unit(path.read_text())
    argv = shlex.split(unit.get("Service", "ExecStart", "").lstrip("-@:+!"))
    if not argv or not argv[0].endswith("/" + IMAGE_NAME):
        fail(f"{rel(path)}: ExecStart does not run {IMAGE_NAME}")
    example = DEPLOY / "systemd" / "env.example"
    inv = Invocation(f"{rel(path)}: ExecStart", argv[1:], read_env_file(example))
    inv.unit = unit
    return inv


def check_systemd(inv, helps):
    unit = inv.unit
    where = rel(DEPLOY / "systemd" / "deepchat-proxy.service")
    drain = int(flag_value(inv, helps, "--drain-timeout"))
    stop = parse_duration(unit.get("Service", "TimeoutStopSec", "90"))
    (ok if stop > drain else fail)(
        f"{where}: TimeoutStopSec {stop}s > --drain-timeout {drain}s (with env.example)")
    wanted = {
        "DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "NoNewPrivileges": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet": "",
        "MemoryDenyWriteExecute": "yes", "LockPersonality": "yes", "KillSignal": "SIGTERM",
        "Restart": "on-failure", "EnvironmentFile": "/etc/deepchat-proxy/env",
    }
    for key, value in wanted.items():
        got = unit.get("Service", key)
        (ok if got == value else fail)(f"{where}: {key}={value}" + ("" if got == value else f" (has {got!r})"))
    if "@system-service" in unit.all("Service", "SystemCallFilter"):
        ok(f"{where}: SystemCallFilter=@system-service")
    else:
        fail(f"{where}: SystemCallFilter should allow @system-service")
    if inv.env.get("OPENAI_API_KEY") is None:
        fail(f"{where}: env.example does not show where the key goes")


def nginx_blocks(text):
    """location blocks: {'= /chat': 'body', ...} (no nesting beyond what these files use)."""
    blocks = {}
    for m in re.finditer(r"location\s+([^{]+?)\s*\{", text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        blocks[m.group(1).strip()] = text[m.end(): i - 1]
    return blocks


def check_nginx_text(where, text):
    chat_path = HELPS[""]["flags"]["--path"]["default"]
    if not re.search(r"map\s+\$http_upgrade\s+\$connection_upgrade", text):
        fail(f"{where}: no `map $http_upgrade $connection_upgrade`")
    blocks = nginx_blocks(text)
    body = blocks.get(f"= {chat_path}") or blocks.get(chat_path)
    if body is None:
        fail(f"{where}: no location for {chat_path}")
        return
    required = {
        "proxy_http_version 1.1": r"proxy_http_version\s+1\.1;",
        "Upgrade header": r"proxy_set_header\s+Upgrade\s+\$http_upgrade;",
        "Connection header": r"proxy_set_header\s+Connection\s+\$connection_upgrade;",
        "Host": r"proxy_set_header\s+Host\s+\$host;",
        "Origin": r"proxy_set_header\s+Origin\s+\$http_origin;",
        "X-Forwarded-For": r"proxy_set_header\s+X-Forwarded-For\s+\$proxy_add_x_forwarded_for;",
        "proxy_buffering off": r"proxy_buffering\s+off;",
        "proxy_cache off": r"proxy_cache\s+off;",
    }
    missing = [k for k, r in required.items() if not re.search(r, body)]
    # nginx must not be the one that gives up first: its timeouts exceed every timeout of the proxy
    # (except the shutdown drain), whatever they are called in this version of the binary.
    timeouts = {name: int(spec["default"]) for name, spec in HELPS[""]["flags"].items()
                if name.endswith("-timeout") and name != "--drain-timeout"
                and (spec["default"] or "").isdigit()}
    longest = max(timeouts.values(), default=0)
    for key in ("proxy_read_timeout", "proxy_send_timeout"):
        m = re.search(key + r"\s+(\d+)(s|m|h)?;", body)
        seconds = int(m.group(1)) * {"s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)] if m else 0
        if seconds <= longest:
            missing.append(f"{key} longer than the proxy's own timeouts ({longest}s)")
    if missing:
        fail(f"{where}: location {chat_path} lacks: {', '.join(missing)}")
    else:
        ok(f"{where}: location {chat_path} upgrades WebSockets, streams unbuffered, long timeouts, "
           "forwards Host/Origin/X-Forwarded-For")


# --------------------------------------------------------------------------------------------
# Names anywhere in deploy/.


def check_names(helps, pending):
    known = {f for h in helps.values() for f in h["flags"]}
    envs = {s["env"] for h in helps.values() for s in h["flags"].values() if s["env"]}
    seen_flags, seen_envs, unknown = {}, {}, []
    texts = {}
    for path in deploy_files():
        try:
            texts[path] = path.read_text()
        except UnicodeDecodeError:
            continue
    for path, text in texts.items():
        for n, line in enumerate(text.splitlines(), 1):
            for flag in re.findall(r"(?<![\w/-])--[a-z][a-z0-9-]*", line):
                seen_flags.setdefault(flag, f"{rel(path)}:{n}")
                if flag not in known and flag not in pending["flag"] and flag not in FOREIGN_FLAGS:
                    unknown.append(f"{flag} ({rel(path)}:{n})")
            for env in re.findall(r"\bDEEPCHAT_PROXY_[A-Z0-9_]+\b", line):
                seen_envs.setdefault(env, f"{rel(path)}:{n}")
    if unknown:
        fail("flags in deploy/ that the binary does not have (nor pending-flags.txt, nor the list of "
             "other tools' flags in check.py): " + ", ".join(unknown))
    proxy_flags = sorted(f for f in seen_flags if f in known)
    ok(f"every proxy flag named in deploy/ exists in --help: {' '.join(proxy_flags)}")
    for flag in sorted(pending["flag"]):
        if flag in known:
            say("note", f"{flag} is in the binary now: remove it from pending-flags.txt")
        elif flag in seen_flags:
            say("pending", f"{flag} named at {seen_flags[flag]} (pending-flags.txt)")
        else:
            fail(f"pending-flags.txt lists {flag}, which nothing in deploy/ names: remove it")
    bad_envs = [f"{e} ({w})" for e, w in seen_envs.items() if e not in envs and e not in pending["env"]]
    if bad_envs:
        fail("DEEPCHAT_PROXY_* variables in deploy/ that the binary does not read: " + ", ".join(bad_envs))
    else:
        ok(f"every DEEPCHAT_PROXY_* variable named in deploy/ is read by the binary "
           f"({len([e for e in seen_envs if e in envs])} of them)")
    for env in sorted(pending["env"]):
        if env in envs:
            say("note", f"{env} is in the binary now: remove it from pending-flags.txt")
        elif env in seen_envs:
            say("pending", f"{env} named at {seen_envs[env]} (pending-flags.txt)")
        else:
            fail(f"pending-flags.txt lists {env}, which nothing in deploy/ names: remove it")
    for endpoint in sorted(pending["endpoint"]):
        if not any(endpoint in t for t in texts.values()):
            fail(f"pending-flags.txt lists {endpoint}, which nothing in deploy/ names: remove it")


# --------------------------------------------------------------------------------------------
# The binary itself: does it accept each command line, does it serve the probes' endpoints?


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def runnable_args(inv, helps, pending, fixtures):
    """The command line with pending flags dropped, every listener on a free loopback port, and
    paths inside mounted volumes moved to `fixtures`, where the mounted files exist."""
    out, i, args = [], 0, list(inv.args)
    for mount, names in inv.mounts.items():
        local = Path(fixtures, mount.strip("/"))
        local.mkdir(parents=True, exist_ok=True)
        for name in names:
            # Written once: rewriting it (truncate, write) while an earlier invocation's
            # process reads the same mounted file would let that one read it empty.
            if not (local / name).exists():
                (local / name).write_text("sk-fixture-for-deploy-check\n")
        args = [str(local) + a[len(mount):] if a == mount or a.startswith(mount.rstrip("/") + "/") else a
                for a in args]
    while i < len(args):
        tok = args[i]
        name = tok.split("=", 1)[0]
        if name in pending["flag"] and not any(name in h["flags"] for h in helps.values()):
            nxt = args[i + 1] if i + 1 < len(args) else None
            if "=" not in tok and nxt is not None and not nxt.startswith("--") and nxt not in helps[""]["commands"]:
                i += 1
        elif name in ("--listen", "--metrics-listen"):
            out += [name, "127.0.0.1:0"]
            if "=" not in tok:
                i += 1
        else:
            out.append(tok)
        i += 1
    return out


def check_binary_accepts(binary, invocations, helps, pending):
    has_check = "--check" in helps[""]["flags"]
    base_env = {**FIXTURE_KEYS,
                **{k: v for k, v in os.environ.items() if not k.startswith("DEEPCHAT_PROXY_")}}
    procs = []
    fixtures = tempfile.mkdtemp(prefix="deploy-fixtures-")
    for inv in invocations:
        env = {**base_env, **inv.env, "DEEPCHAT_PROXY_LISTEN": "127.0.0.1:0"}
        env.pop("DEEPCHAT_PROXY_METRICS_LISTEN", None)
        argv = [binary] + (["--check"] if has_check else []) + runnable_args(inv, helps, pending, fixtures)
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        procs.append((inv, argv, proc))
    if has_check:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(p.poll() is None for _, _, p in procs):
            time.sleep(0.05)
    else:
        time.sleep(1.0)  # a clap or configuration error exits well within this
    how = "--check passes" if has_check else "starts and keeps running (no --check in the binary yet)"
    for inv, argv, proc in procs:
        code = proc.poll()
        if code is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        err = proc.stderr.read().strip()
        if (has_check and code == 0) or (not has_check and code is None):
            ok(f"{inv.where}: the binary accepts it: {how}")
        else:
            fail(f"{inv.where}: `{' '.join(argv[1:])}` exits {code}: {err[-600:]}")
    shutil.rmtree(fixtures, ignore_errors=True)


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, ""
    except OSError as err:
        return str(err), ""


def check_endpoints(binary, helps, pending):
    """The endpoints the probes, HEALTHCHECK and Prometheus annotations use, on the main listener
    and (when the binary has it) on a separate --metrics-listen address."""
    port, metrics_port = free_port(), free_port()
    layouts = [("main listener", ["--listen", f"127.0.0.1:{port}"], port, ["/healthz", "/readyz"])]
    if "--metrics-listen" in helps[""]["flags"]:
        layouts.append(("--metrics-listen", ["--listen", f"127.0.0.1:{port}", "--metrics-listen",
                                             f"127.0.0.1:{metrics_port}"], metrics_port,
                        ["/healthz", "/readyz", "/metrics"]))
    for name, args, target, endpoints in layouts:
        proc = subprocess.Popen([binary, *args, "demo"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", target), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            for endpoint in endpoints:
                status, body = http_get(f"http://127.0.0.1:{target}{endpoint}")
                if endpoint == "/metrics" and status == 200 and "deepchat_proxy_" not in body:
                    say("note", f"GET {endpoint} on the {name}: 200, but no deepchat_proxy_ series "
                                "before any traffic")
                if status == 200:
                    ok(f"the binary (demo) answers GET {endpoint} on the {name} with 200")
                    if endpoint in pending["endpoint"]:
                        say("note", f"{endpoint} is served now: remove it from pending-flags.txt")
                elif endpoint in pending["endpoint"]:
                    say("pending", f"GET {endpoint} on the {name} answers {status}; deploy/ needs 200 "
                                   "(pending-flags.txt)")
                else:
                    fail(f"GET {endpoint} on the {name} answers {status}; deploy/ needs 200")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)


# --------------------------------------------------------------------------------------------


def main():
    global HELPS
    binary = str(Path(sys.argv[1]).resolve())
    HELPS = helps = {"": read_help(binary)}
    for command in helps[""]["commands"]:
        helps[command] = read_help(binary, command)
    pending = load_pending()

    docs = load_yaml_files()
    dockerfile = check_dockerfile()
    check_build_context(dockerfile)
    check_names(helps, pending)

    invocations = [Invocation("Dockerfile: default CMD", dockerfile["cmd"] or [])]
    compose = compose_invocations(docs)
    k8s = k8s_invocations(docs)
    unit = systemd_invocation()
    invocations += compose + k8s + [unit]
    structured = {tuple(i.args) for i in invocations}
    invocations += [i for i in text_invocations(helps) if tuple(i.args) not in structured]
    valid = [inv for inv in invocations if check_invocation(inv, helps, pending)]
    runnable = [inv for inv in valid if not inv.query]

    for inv in compose:
        if inv in valid:
            listen = check_compose(inv, helps)
            url = f"ws://localhost:{port_of(listen)}{flag_value(inv, helps, '--path')}"
            check_page(rel(DEPLOY / "compose" / "index.html"),
                       (DEPLOY / "compose" / "index.html").read_text(), helps, url)
    check_k8s_objects(docs)
    sidecar_listen = None
    for inv in k8s:
        if inv in valid:
            listen = check_k8s_proxy(inv, helps, dockerfile)
            if inv.k8s[0].name == "sidecar.yaml":
                sidecar_listen = listen
    check_sidecar_nginx(docs, sidecar_listen)
    if unit in valid:
        check_systemd(unit, helps)
    check_nginx_text(rel(DEPLOY / "nginx" / "deepchat-proxy.conf"),
                     (DEPLOY / "nginx" / "deepchat-proxy.conf").read_text())

    check_binary_accepts(binary, runnable, helps, pending)
    check_endpoints(binary, helps, pending)

    print(f"check.py: {results['ok']} ok, {results['pending']} pending, {results['FAIL']} failed")
    return 1 if results["FAIL"] else 0


HELPS = {}
SECRETS = {}  # Secret name -> keys, from deploy/kubernetes/

if __name__ == "__main__":
    sys.exit(main())
