-- One refresh-token chain per wrk thread (run with -c equal to -t): every
-- response's rotated cookie is presented by the next request.
local n = 0
function setup(thread)
  n = n + 1
  thread:set("cookie", os.getenv("RT" .. n))
  thread:set("fails", 0)
end
function request()
  return wrk.format("POST", "/api/refresh", { ["Cookie"] = "refreshToken=" .. cookie })
end
function response(status, headers, body)
  local sc = headers["set-cookie"] or headers["Set-Cookie"]
  if sc then cookie = string.match(sc, "refreshToken=([^;]*)") or cookie end
  if status ~= 200 then fails = fails + 1 end
end
