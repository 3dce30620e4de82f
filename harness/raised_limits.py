"""The rate limits of a service under load from one address (bench/http, scripts/faults)."""

# Every request comes from one IP: the limits stay on and are counted on every request, only
# raised. The default one too: it counts logins per IP (1 000 logins take ~20 s), and a deep
# page is one user's.
RAISED_LIMITS = {
    "RATE_LIMIT_DEFAULT": "100000/minute",
    "RATE_LIMIT_LOGIN": "100000/minute",
    "RATE_LIMIT_LOGIN_IP": "100000/minute",
    "RATE_LIMIT_REFRESH": "100000/minute",
    "RATE_LIMIT_REGISTER": "100000/hour",
}
