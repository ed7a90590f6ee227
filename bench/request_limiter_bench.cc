// The request limiter's bookkeeping, asked once for every request the
// transfer loop starts: unlimited, at 200 a second (--max-requests 200)
// and at 100,000 a second (a ring of that many start times). The clock is
// handed in, as the loop does, so nothing here sleeps.
#include <benchmark/benchmark.h>

#include "policy/request_limiter.h"

namespace ferry {
namespace {

// Arg: requests per second, 0 for no limit. Time moves on by the limit's
// spacing before every request, so every request may start: the cost of
// MayStart() and Started() together.
void BM_RequestLimiterStart(benchmark::State& state) {
  const auto per_second = static_cast<double>(state.range(0));
  RequestLimiter limiter(per_second);
  const Clock::duration step =
      per_second > 0 ? std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(1.0 / per_second))
                     : Clock::duration(1);
  Clock::time_point now = Clock::now();
  int64_t refused = 0;
  for (auto _ : state) {
    now += step;
    if (limiter.MayStart(now)) {
      limiter.Started(now);
    } else {
      ++refused;
    }
  }
  if (refused != 0) state.SkipWithError("a request on time was refused");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RequestLimiterStart)
    ->ArgName("per_s")
    ->Arg(0)
    ->Arg(200)
    ->Arg(100000);

// Arg: requests per second. The loop asks while the limit says no, as it
// does after every turn while requests are ready: the cost of a refusal
// and of NextStart(), which sets the loop's timer.
void BM_RequestLimiterRefuse(benchmark::State& state) {
  RequestLimiter limiter(static_cast<double>(state.range(0)));
  const Clock::time_point now = Clock::now();
  limiter.Started(now);
  int64_t allowed = 0;
  for (auto _ : state) {
    allowed += limiter.MayStart(now) ? 1 : 0;
    benchmark::DoNotOptimize(limiter.NextStart());
  }
  if (allowed != 0) state.SkipWithError("a request too early was allowed");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RequestLimiterRefuse)->ArgName("per_s")->Arg(200)->Arg(100000);

}  // namespace
}  // namespace ferry
