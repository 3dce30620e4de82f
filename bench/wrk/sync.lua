-- GET /api/v1/sync?token=<the user's sync token>: each user's incremental sync in turn
-- (bench/http_sync.py writes the tokens: nothing new after them, or 20 changes).
dofile("bench/wrk/common.lua")

function init(args)
  next_request = cycle(function(user)
    return wrk.format("GET", "/api/v1/sync?token=" .. user.sync, auth_headers(user))
  end)
end
