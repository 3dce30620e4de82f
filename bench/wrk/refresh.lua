-- POST /api/v1/auth/refresh. Tokens rotate: each is spent once, so request() takes one from
-- a queue and response() puts back the new one. The queue starts with the refresh tokens of
-- users BENCH_REFRESH_FIRST .. +BENCH_REFRESH_COUNT-1 (each run gets unspent ones).
dofile("bench/wrk/common.lua")

local queue, head, tail = {}, 1, 0

local function push(token)
  tail = tail + 1
  queue[tail] = token
end

function init(args)
  local first = tonumber(os.getenv("BENCH_REFRESH_FIRST") or "1")
  local last = first + tonumber(os.getenv("BENCH_REFRESH_COUNT") or "200") - 1
  for i = first, math.min(last, #users) do push(users[i].refresh) end
  next_request = function()
    local token = queue[head] or ""  -- an empty queue shows up as 422s, not a hang
    queue[head] = nil
    head = math.min(head + 1, tail + 1)
    local body = string.format('{"refresh_token":"%s"}', token)
    return wrk.format("POST", "/api/v1/auth/refresh", JSON, body)
  end
end

function response(status, headers, body)
  count(status)
  local token = body:match('"refresh_token":"([^"]+)"')
  if token then push(token) end
end
