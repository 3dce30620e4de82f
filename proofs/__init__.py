"""Black-box proofs over HTTP on real processes: the fault suite (scripts/faults) and the
two-instance scale-out proof (scripts/scale-proof). See README.md, "Fault suite" and
"Scale-out"."""
