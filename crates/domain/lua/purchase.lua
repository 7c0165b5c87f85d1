-- purchase.lua: a batch of purchase attempts, each checked and written in
-- one atomic step, in the order given. One call decides every purchase an
-- api thread gathered while its previous call was in flight; each buyer's
-- answer is exactly the one a call of their own would have given at that
-- point, and one buyer's refusal never affects the others.
--
-- KEYS[1]    {sale:ID}:stock              integer, remaining stock
-- KEYS[2]    {sale:ID}:buyers             hash userId -> "orderId|purchasedAtMillis" (the ledger)
-- KEYS[3]    {sale:ID}:meta               hash: total, startsAt, endsAt, last (the
--                                         ledger's last writer: an order id)
-- KEYS[3+i]  {sale:ID}:attempts:<userId>  the i-th purchase's attempt counter
--                                         (only when ARGV[1] is not 0: without a
--                                         limit no counter is kept, or sent)
-- ARGV[1]    maximum attempts per user in the window (0 = no limit)
-- ARGV[2]    attempt window in seconds (at least 1)
-- ARGV[3]    sale start, epoch millis (inclusive)
-- ARGV[4]    sale end, epoch millis (inclusive)
-- ARGV[5]    "1": the api WAITs for replicas after this call, so the call
--            always writes (meta `decided`), which makes the WAIT cover
--            every write before it, whichever connection made it (a 409
--            names an order another connection wrote); "0" otherwise
-- ARGV[4+2i] the i-th purchase's userId
-- ARGV[5+2i] the i-th purchase's orderId, minted by the api before the call
--
-- Returns an array: first "<nowMillis>|<stockLeft>|<buyers>", Redis's clock
-- (the batch's one instant: every purchase time) and the stock and ledger
-- size after the batch (both empty when the sale was not read whole), then
-- one reply per purchase, in order:
--   "OK"                                      stock decremented, ledger entry written;
--                                             the stock it left is the stock after
--                                             the batch plus the OKs after it
--   "DUPLICATE|<orderId>|<purchasedAtMillis>" this user already bought: their order
--                                             (also when they bought earlier in this batch)
--   "SOLD_OUT"                                no stock left: the ledger's size then is
--                                             the size after the batch (no OK follows a
--                                             SOLD_OUT), so a replica can answer later
--                                             refusals itself until it or the clock moves
--   "TOO_MANY_ATTEMPTS"                       the user is over ARGV[1] attempts
--   "NOT_ARMED"                               the sale is missing or only partly there
--   "NOT_STARTED" / "ENDED"                   outside the window, by Redis's clock
-- Constant replies, not "OK|<millis>|<stock>" per buyer: building that
-- string (a number formatted, a new string interned) for every buyer cost
-- Redis time per buyer (docs/profile/purchase-script.md measures it).
--
-- A sale is sold from only when it is whole: meta and stock present and
-- stock = max(0, total - buyers). A missing stock key is never "sold out"
-- (that would answer for a sale Redis merely forgot, and DECR would create a
-- negative stock); a stock whose ledger is gone would let earlier buyers buy
-- again. Either answers NOT_ARMED, and the api rebuilds the sale from
-- PostgreSQL. The window is judged first, and the purchase time taken, on
-- Redis's clock: one clock for every replica, however far their own clocks
-- drift; outside the window the answer does not depend on the stock (an
-- ended sale's keys expire, PostgreSQL keeps its orders). The whole batch
-- runs at one instant of that clock.
local count = (#ARGV - 5) / 2
local replies = {}

local now = redis.call('TIME')
local millis = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local purchased_at = string.format('%d', millis)

local function answer_all(reply)
  replies[1] = purchased_at .. '||'
  for i = 1, count do
    replies[1 + i] = reply
  end
  return replies
end

if millis < tonumber(ARGV[3]) then
  return answer_all('NOT_STARTED')
end
if millis > tonumber(ARGV[4]) then
  return answer_all('ENDED')
end

local stock = redis.call('GET', KEYS[1])
local total = redis.call('HGET', KEYS[3], 'total')
if not stock or not total then
  return answer_all('NOT_ARMED')
end
stock = tonumber(stock)
local buyers = redis.call('HLEN', KEYS[2])
if stock ~= math.max(0, tonumber(total) - buyers) then
  return answer_all('NOT_ARMED')
end

local max_attempts = tonumber(ARGV[1])
local sold = 0
local last_order = nil
for i = 1, count do
  local user = ARGV[4 + 2 * i]
  local order = ARGV[5 + 2 * i]
  local over = false
  if max_attempts > 0 then
    local attempts = redis.call('INCR', KEYS[3 + i])
    if attempts == 1 then
      redis.call('EXPIRE', KEYS[3 + i], ARGV[2])
    end
    over = attempts > max_attempts
  end
  if over then
    replies[1 + i] = 'TOO_MANY_ATTEMPTS'
  else
    -- With stock left, HSETNX both asks whether the user bought and
    -- writes their entry if not: one command for a new buyer (the common
    -- case in a rush), the same answers as asking first. (One difference:
    -- while Redis refuses writes (OOM under noeviction, NOREPLICAS,
    -- READONLY) a batch of earlier buyers alone, with stock left, now
    -- fails like any batch with a new buyer in it, a 503, where asking
    -- first answered their 409s. Those states fail every purchase anyway.)
    if stock > 0 and redis.call('HSETNX', KEYS[2], user, order .. '|' .. purchased_at) == 1 then
      stock = stock - 1
      buyers = buyers + 1
      sold = sold + 1
      last_order = order
      replies[1 + i] = 'OK'
    else
      local existing = redis.call('HGET', KEYS[2], user)
      if existing then
        replies[1 + i] = 'DUPLICATE|' .. existing
      else
        replies[1 + i] = 'SOLD_OUT'
      end
    end
  end
end

if sold > 0 then
  redis.call('DECRBY', KEYS[1], sold)
  -- The ledger's last writer: a change the reconciler's counts cannot see
  -- (a buyer lost in a failover, another's entry added) still changes this.
  redis.call('HSET', KEYS[3], 'last', last_order)
end
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[3], 'decided', purchased_at)
end
replies[1] = purchased_at .. '|' .. stock .. '|' .. buyers
return replies
