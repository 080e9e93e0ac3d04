-- The upload point: every request POSTs a 1 MiB body (the upstream reads and discards it).
wrk.method = "POST"
wrk.body = string.rep("x", 1024 * 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
