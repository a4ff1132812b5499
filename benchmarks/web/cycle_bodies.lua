-- wrk script: POST pre-signed IPN bodies, each once (a file of "signature<TAB>body" lines,
-- split between wrk's threads). Arguments: <file> <threads>.
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

function init(args)
  local nthreads = tonumber(args[2])
  requests = {}
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == tid then
      local sig, body = line:match("^(%x+)\t(.*)$")
      requests[#requests + 1] = wrk.format(
        "POST", nil, { ["Content-Type"] = "application/json", ["x-nowpayments-sig"] = sig }, body
      )
    end
    i = i + 1
  end
  n = 0
end

function request()
  n = n + 1
  if n > #requests then
    n = 1 -- ran out: repeats from here on are duplicates (the report says how many were sent)
  end
  return requests[n]
end
