-- GET /api/v1/todos/{id}: one todo each user owns, users in turn.
dofile("bench/wrk/common.lua")

function init(args)
  next_request = cycle(get_request)
end
