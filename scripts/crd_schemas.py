"""Write JSON schemas of the custom resources deploy/k8s uses, for tests/deploy.

Run by scripts/tools.sh with the interpreter of a separate virtual environment that holds
the cloudcoil model wheels (pydantic models generated from KEDA's and the Prometheus
Operator's published CRDs). They stay out of the project's environment: cloudcoil
registers a pytest plugin. Usage: ``python scripts/crd_schemas.py OUT_DIR``; writes
``OUT_DIR/<group>_<version>_<Kind>.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cloudcoil.models.keda import v1alpha1 as keda
from cloudcoil.models.prometheus_operator import v1 as prometheus_operator

MODELS = {
    "keda.sh/v1alpha1": (keda.ScaledObject, keda.TriggerAuthentication),
    "monitoring.coreos.com/v1": (prometheus_operator.ServiceMonitor,
                                 prometheus_operator.PrometheusRule),
}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for api_version, models in MODELS.items():
        for model in models:
            name = f"{api_version.replace('/', '_')}_{model.__name__}.json"
            schema = model.model_json_schema(by_alias=True, mode="validation")
            (out / name).write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
