-- Shared by every scenario script: the logged-in users (BENCH_TOKENS, written by
-- bench/http_tokens.py), the requests they send, status counting, and one JSON line of
-- results at the end that bench/http_wrk.py parses instead of wrk's text.

users = dofile(os.getenv("BENCH_TOKENS"))

-- The service reads the bearer token; the floor, which has no auth, reads X-User-Id.
function auth_headers(user, extra)
  local headers = { ["Authorization"] = "Bearer " .. user.token, ["X-User-Id"] = user.user }
  for name, value in pairs(extra or {}) do headers[name] = value end
  return headers
end

JSON = { ["Content-Type"] = "application/json" }

function list_request(user, query)
  return wrk.format("GET", "/api/v1/todos?" .. query, auth_headers(user))
end

function get_request(user)
  return wrk.format("GET", "/api/v1/todos/" .. user.todo, auth_headers(user))
end

CREATE_BODY = '{"title":"Bench todo","priority":"high","tags":["work"],'
  .. '"due_at":"2030-01-31T17:00:00Z"}'

function create_request(user)
  return wrk.format("POST", "/api/v1/todos", auth_headers(user, JSON), CREATE_BODY)
end

-- One request per user, built once (in init, when wrk knows the Host header), then sent
-- round-robin: consecutive requests come from different users.
function cycle(build)
  local built = {}
  for i, user in ipairs(users) do built[i] = build(user) end
  local turn = 0
  return function()
    turn = turn % #built + 1
    return built[turn]
  end
end

-- wrk decides at load time whether `request` is dynamic, so it must exist globally; the
-- scenario's init() fills in what it returns.
next_request = nil
function request() return next_request() end

non2xx = 0
function count(status)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

function response(status, headers, body) count(status) end

local threads = {}
function setup(thread) table.insert(threads, thread) end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("non2xx") end
  local e = summary.errors
  local seconds = summary.duration / 1e6
  local function ms(p) return latency:percentile(p) / 1000 end
  io.write(string.format(
    '{"requests":%d,"duration_s":%.3f,"rps":%.2f,"p50_ms":%.3f,"p90_ms":%.3f,'
      .. '"p95_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"non2xx":%d,"socket_errors":%d}\n',
    summary.requests, seconds, summary.requests / seconds, ms(50), ms(90), ms(95), ms(99),
    latency.max / 1000, bad, e.connect + e.read + e.write + e.timeout
  ))
end
