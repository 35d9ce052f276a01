-- Chains refresh grants: every answer carries the next refresh token.
-- Each thread starts from its own seed tokens (BENCH_SEEDS: files of
-- tokens, one per line, one file per thread, named by BENCH_SEEDS .. n).
local counter = 0
local threads = {}

function setup(thread)
    counter = counter + 1
    thread:set("id", counter)
    table.insert(threads, thread)
end

function init(args)
    tokens = {}
    local f = io.open(os.getenv("BENCH_SEEDS") .. id, "r")
    for line in f:lines() do
        table.insert(tokens, line)
    end
    f:close()
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
end

function request()
    local t = table.remove(tokens)
    if t == nil then
        t = "exhausted"
    end
    return wrk.format(nil, nil, nil,
        '{"grantType":"refresh_token","refreshToken":"' .. t .. '"}')
end

function response(status, headers, body)
    local t = body:match('"refreshToken":"([^"]+)"')
    if t then
        table.insert(tokens, t)
    end
end
