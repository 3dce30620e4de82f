-- The soak's load: list, get one, create, in turn, each from the next user.
dofile("bench/wrk/common.lua")

function init(args)
  local kinds = {
    cycle(function(user) return list_request(user, "limit=20") end),
    cycle(get_request),
    cycle(create_request),
  }
  local turn = 0
  next_request = function()
    turn = turn % #kinds + 1
    return kinds[turn]()
  end
end
