-- One fixed request, described by the environment bench/load.py sets:
--   BENCH_LUA_DIR, BENCH_METHOD (GET), BENCH_BODY, BENCH_COOKIE, BENCH_CONTENT_TYPE.
-- wrk keeps no cookies: every request replays the same session cookie and CSRF token.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.body = body
end
local cookie = os.getenv("BENCH_COOKIE")
if cookie and cookie ~= "" then
  wrk.headers["Cookie"] = cookie
end
local ctype = os.getenv("BENCH_CONTENT_TYPE")
if ctype and ctype ~= "" then
  wrk.headers["Content-Type"] = ctype
end

done = bench_report
