-- POST /api/v1/todos: a new todo for each user in turn (the driver deletes them afterwards).
dofile("bench/wrk/common.lua")

function init(args)
  next_request = cycle(create_request)
end
