"""The official Python Kubernetes client against the sandbox (tests/sandbox/protocol.rs runs it).

Usage: python3 python_client.py KUBECONFIG NAMESPACE

Creates a Namespace, a ConfigMap, a Deployment and an Application (the client sends these
without a Content-Type), reads them back, and prints what it saw as one JSON object on stdout.
Any API error ends it with exit code 1 and the error on stderr.
"""

import json
import sys

from kubernetes import client, config
from kubernetes.client.rest import ApiException


def main() -> int:
    kubeconfig, ns = sys.argv[1], sys.argv[2]
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()
    apps = client.AppsV1Api()
    custom = client.CustomObjectsApi()
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        core.create_namespaced_config_map(
            ns,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name="settings"), data={"greeting": "hello"}
            ),
        )
        apps.create_namespaced_deployment(
            ns,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "nginx:1"}]},
                    },
                },
            },
        )
        custom.create_namespaced_custom_object(
            "logbook.dev",
            "v1alpha1",
            ns,
            "applications",
            {
                "apiVersion": "logbook.dev/v1alpha1",
                "kind": "Application",
                "metadata": {"name": "storefront"},
                "spec": {"image": "ghcr.io/acme/storefront:1", "port": 8080},
            },
        )
        # A replace (PUT) goes the same way.
        cm = core.read_namespaced_config_map("settings", ns)
        cm.data["greeting"] = "hi"
        core.replace_namespaced_config_map("settings", ns, cm)
        seen = {
            "namespace": core.read_namespace(ns).status.phase,
            "configmap": core.read_namespaced_config_map("settings", ns).data,
            "replicas": apps.read_namespaced_deployment("web", ns).spec.replicas,
            "application": custom.get_namespaced_custom_object(
                "logbook.dev", "v1alpha1", ns, "applications", "storefront"
            )["spec"],
        }
    except ApiException as e:
        print(f"API error {e.status} {e.reason}: {e.body}", file=sys.stderr)
        return 1
    print(json.dumps(seen, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
