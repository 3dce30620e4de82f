-- POST /api/v1/todos in a shared project (BENCH_TOKENS: one member, once per project), the
-- projects in turn; the driver deletes the todos afterwards.
dofile("bench/wrk/common.lua")

function init(args)
  next_request = cycle(function(user)
    local body = CREATE_BODY:sub(1, -2) .. ',"project_id":"' .. user.project .. '"}'
    return wrk.format("POST", "/api/v1/todos", auth_headers(user, JSON), body)
  end)
end
