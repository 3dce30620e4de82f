-- GET /api/v1/todos?<BENCH_QUERY>, each user's own list in turn (default: the first page).
dofile("bench/wrk/common.lua")

function init(args)
  local query = os.getenv("BENCH_QUERY") or "limit=20"
  next_request = cycle(function(user) return list_request(user, query) end)
end
