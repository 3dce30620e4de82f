"""What the tests, the benchmarks (bench/) and the proofs (proofs/) share to run the service
from outside it: migrations on a given database, the live-server launcher, the deployment's
reverse proxy (nginx on deploy/nginx.conf), the raised rate limits of a run under load. The
app never imports it."""
