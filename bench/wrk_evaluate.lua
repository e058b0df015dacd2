-- wrk script for bench/run.py --api: POST one claim (claim d1 of docs/demo/tianjin-day-surgery.json)
-- to medpay's evaluate endpoint, then print the latency percentiles as one JSON line.
--   wrk -t1 -c1 -d10s --timeout 2s -s bench/wrk_evaluate.lua http://127.0.0.1:PORT/v1/cities/tianjin/evaluate

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{"period":"2018","entities":{"claim":[{"id":"d1","setting":"day_surgery","total_cost":10000.0,"self_pay_items":0.0,"deductible_standard":800,"base_coinsurance":0.15,"out_of_area":false,"referral_approved":false,"admit_date":"2018-05-01","discharge_date":"2018-05-06"}]}}]]

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'MEDPAY {"requests": %d, "duration_us": %d, "errors_connect": %d, "errors_read": %d, "errors_write": %d, ' ..
    '"errors_status": %d, "errors_timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, ' ..
    '"mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.mean, latency.max))
end
