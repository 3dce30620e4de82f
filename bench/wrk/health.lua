-- GET /health: the framework and the server, nothing else.
dofile("bench/wrk/common.lua")

function init(args)
  local health = wrk.format("GET", "/health")
  next_request = function() return health end
end
