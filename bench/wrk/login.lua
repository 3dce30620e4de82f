-- POST /api/v1/auth/login, users in turn: Argon2id at the app's production cost.
dofile("bench/wrk/common.lua")

function init(args)
  local password = os.getenv("BENCH_PASSWORD")
  next_request = cycle(function(user)
    local body = string.format('{"email":"%s","password":"%s"}', user.email, password)
    return wrk.format("POST", "/api/v1/auth/login", JSON, body)
  end)
end
