#!/bin/bash
# Docker HEALTHCHECK for the deepchat-proxy image: `GET /healthz` must answer 200.
#
# The runtime image (debian:bookworm-slim) has no curl or wget, so this speaks HTTP/1.1 through
# bash's /dev/tcp. It finds the proxy's address the way the proxy does: flags on PID 1's command
# line beat DEEPCHAT_PROXY_* variables, which beat the built-in default. `--metrics-listen` (when
# given) moves the health endpoints off the main listener, so it wins over `--listen`.
# Kubernetes ignores HEALTHCHECK and uses the probes in deploy/kubernetes/ instead.
#
# HEALTHCHECK_PID (default 1) names the process whose command line is read; deploy/check.sh uses it
# to test this script outside a container.
set -u

pid="${HEALTHCHECK_PID:-1}"
listen_flag=""
metrics_flag=""
if [[ -r "/proc/$pid/cmdline" ]]; then
  mapfile -d '' -t argv < "/proc/$pid/cmdline"
  for ((i = 1; i < ${#argv[@]}; i++)); do
    case "${argv[i]}" in
      --listen) listen_flag="${argv[i + 1]:-}"; ((i++)) ;;
      --listen=*) listen_flag="${argv[i]#--listen=}" ;;
      --metrics-listen) metrics_flag="${argv[i + 1]:-}"; ((i++)) ;;
      --metrics-listen=*) metrics_flag="${argv[i]#--metrics-listen=}" ;;
    esac
  done
fi

addr="${metrics_flag:-${DEEPCHAT_PROXY_METRICS_LISTEN:-}}"
addr="${addr:-${listen_flag:-${DEEPCHAT_PROXY_LISTEN:-127.0.0.1:8080}}}"

port="${addr##*:}"
host="${addr%:*}"
host="${host#[}"
host="${host%]}"
case "$host" in
  0.0.0.0 | "" | "*") host=127.0.0.1 ;;
  ::) host=::1 ;;
esac

if ! exec 3<>"/dev/tcp/$host/$port"; then
  echo "unhealthy: nothing accepts connections on $host:$port" >&2
  exit 1
fi
printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
status=""
IFS=$' \r' read -r -t 2 _ status _ <&3 || true
exec 3<&-
if [[ "$status" == 200 ]]; then
  exit 0
fi
echo "unhealthy: GET http://$host:$port/healthz answered '${status:-nothing}'" >&2
exit 1
