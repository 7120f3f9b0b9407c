"""A real Envoy on 127.0.0.1, programmed from routing YAML the way istiod programs a sidecar."""
