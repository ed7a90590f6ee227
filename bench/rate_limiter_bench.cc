// The byte bucket of --max-rate, asked by the transfer loop before curl
// hands it bytes and told after: its cost per hand-over, for the sizes
// curl hands over (16 KiB received, 256 KiB sent). The clock is handed in,
// so nothing here sleeps.
#include <benchmark/benchmark.h>

#include "policy/rate_limiter.h"

namespace ferry {
namespace {

// Arg: bytes per hand-over. Time moves on by exactly what the limit
// allows for those bytes, so every hand-over may go: the cost of MayMove()
// and Moved() together, at 20 MiB/s.
void BM_RateLimiterMove(benchmark::State& state) {
  const double rate = 20.0 * 1024 * 1024;
  const auto bytes = static_cast<uint64_t>(state.range(0));
  RateLimiter bucket(rate);
  const auto step = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(static_cast<double>(bytes) / rate));
  Clock::time_point now = Clock::now();
  bucket.Moved(0, now);
  int64_t refused = 0;
  for (auto _ : state) {
    now += step;
    if (bucket.MayMove(now)) {
      bucket.Moved(bytes, now);
    } else {
      ++refused;
    }
  }
  // A hand-over may wait a moment for rounding; many means a bug.
  if (refused * 100 > state.iterations()) {
    state.SkipWithError("hand-overs on time were refused");
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes));
}
BENCHMARK(BM_RateLimiterMove)->ArgName("bytes")->Arg(16 << 10)->Arg(256 << 10);

// While the bucket is empty the loop asks again after each turn and sets
// its timer from NextMove(): the cost of a refusal.
void BM_RateLimiterRefuse(benchmark::State& state) {
  RateLimiter bucket(20.0 * 1024 * 1024);
  const Clock::time_point now = Clock::now();
  bucket.Moved(64 << 20, now);  // deep in debt: every ask is refused
  int64_t allowed = 0;
  for (auto _ : state) {
    allowed += bucket.MayMove(now) ? 1 : 0;
    benchmark::DoNotOptimize(bucket.NextMove());
  }
  if (allowed != 0) state.SkipWithError("bytes in debt were allowed");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RateLimiterRefuse);

}  // namespace
}  // namespace ferry
