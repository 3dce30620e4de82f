-- PATCH /api/v1/todos/{id} with If-Match, toggling `completed`: the todos in BENCH_TOKENS
-- (the driver's patch.lua: each entry a todo and its owner's token) in turn. With at least
-- four times as many todos as connections no two requests in flight touch one todo, so the
-- version read back from the last response is the current one (no 412s).
dofile("bench/wrk/common.lua")

local version, completed = {}, {}

function init(args)
  for _, user in ipairs(users) do
    version[user.todo] = user.version
    completed[user.todo] = user.completed
  end
  local turn = 0
  next_request = function()
    turn = turn % #users + 1
    local user = users[turn]
    completed[user.todo] = not completed[user.todo]
    local headers = auth_headers(user, JSON)
    headers["If-Match"] = '"' .. version[user.todo] .. '"'
    local body = string.format('{"completed":%s}', tostring(completed[user.todo]))
    return wrk.format("PATCH", "/api/v1/todos/" .. user.todo, headers, body)
  end
end

-- wrk does not say which request a response answers; the body does.
function response(status, headers, body)
  count(status)
  local id = body:match('"id":"([%x%-]+)"')
  local seen = body:match('"version":(%d+)')
  if id and seen then version[id] = tonumber(seen) end
end
