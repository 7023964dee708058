-- A long mixed read load for the memory check: the index and its pages, random posts,
-- searches, tag pages and the feed. bench/sections/memory.py runs it in slices of -d seconds
-- until the number of requests it wants is reached, reading RSS between slices.
--   BENCH_LUA_DIR, BENCH_POSTS (ids 1..N exist), BENCH_SEED (random sequence per slice).
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local posts = tonumber(os.getenv("BENCH_POSTS") or "100")
local pages = math.max(1, math.floor(posts / 5))
local tags = { "flask", "python", "gunicorn", "containers", "systemd" }
math.randomseed(tonumber(os.getenv("BENCH_SEED") or "6"))

request = function()
  local pick = math.random(10)
  local path
  if pick <= 3 then
    path = "/?page=" .. math.random(math.min(pages, 50))
  elseif pick <= 6 then
    path = "/" .. math.random(posts)
  elseif pick == 7 then
    path = "/?q=" .. math.random(posts)
  elseif pick == 8 then
    path = "/tag/" .. tags[math.random(#tags)] .. "?page=" .. math.random(3)
  elseif pick == 9 then
    path = "/feed.atom"
  else
    path = "/"
  end
  return wrk.format("GET", path)
end

done = bench_report
