"""Black-box proofs over HTTP on real processes: the fault suite (scripts/faults), the
two-instance scale-out proof (scripts/scale-proof) and the compose stack with three replicas
(scripts/compose-proof). See docs/operations.md."""
