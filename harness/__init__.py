"""What the tests, the benchmarks (bench/) and the proofs (proofs/) share to run the service
outside it: migrations on a given database. The app never imports it."""
