"""The job state machine, as Lua scripts that Redis runs atomically (core.store.jobs sends
them): queued -> running -> succeeded | failed | cancelled, never backwards, and never two
terminal states. A running job whose worker stopped beating stays `running`: the reaper
marks it `released` and its task is sent again, once, and the next worker's claim takes it
(`attempts` counts the tries). Each script moves the job between the status indexes in
the same step, building their names from the index prefix it is given (core.store.keys).
"""

# Every script's ARGV starts with the index prefix (keys.INDEX) and the job id. `move` moves
# the job between the status indexes; it is prepended to every script that changes status.
MOVE = """
local idx, id = ARGV[1], ARGV[2]
local function move(key, from, to)
  local kind = redis.call('HGET', key, 'kind')
  local score = redis.call('HGET', key, 'score')
  redis.call('ZREM', idx .. 'status:' .. from, id)
  redis.call('ZREM', idx .. kind .. ':' .. from, id)
  redis.call('ZADD', idx .. 'status:' .. to, score, id)
  redis.call('ZADD', idx .. kind .. ':' .. to, score, id)
  redis.call('HSET', key, 'status', to)
end
local function hset_pairs(key, first)
  for i = first, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
end
"""

# ARGV: idx, id, to, allowed-from (space separated), field, value, ...
TRANSITION = MOVE + """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return 'missing' end
for s in string.gmatch(ARGV[4], '%S+') do
  if s == cur then move(KEYS[1], cur, ARGV[3]); hset_pairs(KEYS[1], 5); return 'ok' end
end
return cur
"""

# ARGV: idx, id, now, stale_before, worker. Takes a queued job, or a running one whose worker
# died (released by the reaper, or not yet noticed); one asked to stop meanwhile ends cancelled.
CLAIM = MOVE + """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return 'missing' end
if cur == 'queued' then
  move(KEYS[1], 'queued', 'running')
elseif not (cur == 'running' and tonumber(redis.call('HGET', KEYS[1], 'heartbeat') or '0') < tonumber(ARGV[4])) then
  return cur
elseif redis.call('HGET', KEYS[1], 'cancel') == '1' then
  move(KEYS[1], 'running', 'cancelled')
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[3])
  return 'stopped'
end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'heartbeat', ARGV[3], 'worker', ARGV[5], 'released', '0')
if not redis.call('HGET', KEYS[1], 'started_at') then redis.call('HSET', KEYS[1], 'started_at', ARGV[3]) end
return 'ok'
"""

# ARGV: idx, id, now, stale_before, max_attempts, error-json. A running job whose worker went
# silent is released to run again (its task is sent again, once), unless it was asked to stop
# (then it is cancelled) or has used up its attempts (failed).
REAP = MOVE + """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 'gone' end
if tonumber(redis.call('HGET', KEYS[1], 'heartbeat') or '0') >= tonumber(ARGV[4]) then return 'alive' end
if redis.call('HGET', KEYS[1], 'released') == '1' then return 'released' end
if redis.call('HGET', KEYS[1], 'cancel') == '1' then
  move(KEYS[1], 'running', 'cancelled')
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[3])
  return 'cancelled'
end
if tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') >= tonumber(ARGV[5]) then
  move(KEYS[1], 'running', 'failed')
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[3], 'error', ARGV[6])
  return 'failed'
end
redis.call('HSET', KEYS[1], 'released', '1')
return 'requeued'
"""

# ARGV: idx, id, now. Queued jobs, and running ones no worker holds (released), end at once;
# running ones are asked to stop.
CANCEL = MOVE + """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return 'missing' end
if cur == 'queued' or (cur == 'running' and redis.call('HGET', KEYS[1], 'released') == '1') then
  move(KEYS[1], cur, 'cancelled')
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[3])
  return 'stopped'
end
if cur == 'running' then redis.call('HSET', KEYS[1], 'cancel', '1'); return 'requested' end
return cur
"""
