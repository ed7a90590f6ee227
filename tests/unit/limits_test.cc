// The run's limits: requests per second and bytes per second.
#include <gtest/gtest.h>

#include <vector>

#include "ferry/run.h"
#include "policy/concurrency.h"
#include "policy/rate_limiter.h"
#include "policy/request_limiter.h"

namespace ferry {
namespace {

using std::chrono::milliseconds;

TEST(RequestLimiter, SpacesStartsAndNeverExceedsTheRateInAnySecond) {
  RequestLimiter limiter(4);
  Clock::time_point t{};
  std::vector<Clock::time_point> starts;
  // Ask every millisecond for three seconds; start whenever allowed.
  for (int ms = 0; ms < 3000; ++ms) {
    Clock::time_point now = t + milliseconds(ms);
    if (limiter.MayStart(now)) {
      limiter.Started(now);
      starts.push_back(now);
    }
  }
  ASSERT_GE(starts.size(), 11u);
  ASSERT_LE(starts.size(), 12u);
  for (size_t i = 1; i < starts.size(); ++i) {
    EXPECT_GE(starts[i] - starts[i - 1], milliseconds(250));
  }
  for (size_t i = 0; i < starts.size(); ++i) {
    size_t in_window = 0;
    for (size_t j = i; j < starts.size(); ++j) {
      if (starts[j] - starts[i] < std::chrono::seconds(1)) ++in_window;
    }
    EXPECT_LE(in_window, 4u);
  }
  EXPECT_GT(limiter.held(), std::chrono::seconds(2));
}

TEST(RequestLimiter, ZeroMeansNoLimit) {
  RequestLimiter limiter(0);
  Clock::time_point now{};
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(limiter.MayStart(now));
    limiter.Started(now);
  }
  EXPECT_EQ(limiter.held(), Clock::duration::zero());
}

// Streams that each offer a 64 KiB buffer whenever the limit lets them:
// over any stretch of at least a second, what moved stays within the
// rate plus one bucket and one buffer.
TEST(RateLimiter, AveragesNoMoreThanTheRateOverAnyStretch) {
  constexpr double kRate = 20 << 20;
  constexpr uint64_t kBuffer = 64 << 10;
  RateLimiter limiter(kRate);
  Clock::time_point t{};
  std::vector<uint64_t> per_ms(5000, 0);
  for (int ms = 0; ms < 5000; ++ms) {
    Clock::time_point now = t + milliseconds(ms);
    for (int stream = 0; stream < 64; ++stream) {
      if (!limiter.MayMove(now)) break;
      limiter.Moved(kBuffer, now);
      per_ms[ms] += kBuffer;
    }
  }
  const double slack = limiter.burst() + kBuffer;
  uint64_t total = 0;
  for (uint64_t b : per_ms) total += b;
  EXPECT_LE(total, kRate * 5 + slack);
  EXPECT_GE(total, kRate * 5 * 0.98);  // and it does not starve
  for (int from = 0; from + 1000 <= 5000; from += 50) {
    uint64_t in_window = 0;
    for (int ms = from; ms < from + 1000; ++ms) in_window += per_ms[ms];
    EXPECT_LE(in_window, kRate + slack) << "second from " << from << " ms";
  }
  EXPECT_GT(limiter.held(), milliseconds(4000));
}

TEST(RateLimiter, NextMoveIsWhenTheDebtIsPaid) {
  RateLimiter limiter(1 << 20);  // 1 MiB/s: a bucket of 52,428.8 bytes
  Clock::time_point t{};
  ASSERT_TRUE(limiter.MayMove(t));
  // Into a debt of a tenth of a second.
  limiter.Moved(static_cast<uint64_t>(limiter.burst()) + (1 << 20) / 10, t);
  EXPECT_FALSE(limiter.MayMove(t + milliseconds(50)));
  EXPECT_GE(limiter.NextMove(), t + milliseconds(99));
  EXPECT_LE(limiter.NextMove(), t + milliseconds(101));
  EXPECT_TRUE(limiter.MayMove(limiter.NextMove()));
  // Held from the refusal until the debt was paid.
  EXPECT_GE(limiter.held(), milliseconds(49));
  EXPECT_LE(limiter.held(), milliseconds(51));
}

TEST(RateLimiter, ZeroMeansNoLimit) {
  RateLimiter limiter(0);
  EXPECT_FALSE(limiter.limited());
  Clock::time_point now{};
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(limiter.MayMove(now));
    limiter.Moved(1 << 30, now);
  }
  EXPECT_EQ(limiter.held(), Clock::duration::zero());
}

// A run that moves a steady amount a second, whatever its limit.
struct Steady {
  Concurrency c;
  Clock::time_point now{};
  uint64_t bytes = 0;
  uint64_t requests = 0;
  explicit Steady(int ceiling) : c(ceiling) { c.Tick(now, 0, 0); }
  // One more second at `bytes_per_second`.
  void Second(uint64_t bytes_per_second) {
    now += std::chrono::seconds(1);
    bytes += bytes_per_second;
    requests += bytes_per_second / 1000;
    c.Tick(now, bytes, requests);
  }
};

TEST(Concurrency, StartsAtTheCeilingAndHalvesOnOverloadOncePerSecond) {
  Steady run(64);
  EXPECT_EQ(run.c.limit(), 64);
  run.c.Overloaded(run.now);
  EXPECT_EQ(run.c.limit(), 32);
  // The same overload seen by other requests a moment later.
  run.c.Overloaded(run.now + milliseconds(300));
  EXPECT_EQ(run.c.limit(), 32);
  run.c.Overloaded(run.now + milliseconds(1000));
  EXPECT_EQ(run.c.limit(), 16);
  for (int i = 0; i < 10; ++i) {
    run.c.Overloaded(run.now + std::chrono::seconds(2 + i));
  }
  EXPECT_EQ(run.c.limit(), 1);
  EXPECT_EQ(run.c.lowest(), 1);
  EXPECT_EQ(run.c.cuts(), 12);
}

TEST(Concurrency, GrowsByOneASecondUpToTheCeilingNeverBeyond) {
  Steady run(8);
  run.c.Overloaded(run.now);
  ASSERT_EQ(run.c.limit(), 4);
  run.c.Tick(run.now, run.bytes, run.requests);  // a new interval begins
  for (int i = 0; i < 20; ++i) run.Second(1'000'000);
  EXPECT_EQ(run.c.limit(), 8);
  EXPECT_EQ(run.c.lowest(), 4);
}

TEST(Concurrency, TakesBackAStepThatMadeThroughputFall) {
  Steady run(64);
  run.c.Overloaded(run.now);
  run.c.Tick(run.now, run.bytes, run.requests);
  run.Second(1'000'000);  // nothing to compare with yet: a step up
  ASSERT_EQ(run.c.limit(), 33);
  run.Second(1'000'000);  // not fallen: another
  ASSERT_EQ(run.c.limit(), 34);
  run.Second(500'000);  // fell by half after the step to 34: back to 33
  EXPECT_EQ(run.c.limit(), 33);
  for (int i = 0; i < 5; ++i) run.Second(500'000);
  EXPECT_EQ(run.c.limit(), 33);  // held a while
  run.Second(500'000);
  EXPECT_EQ(run.c.limit(), 34);  // then tried again
}

TEST(ByteRate, ReadsBinaryMultiples) {
  EXPECT_EQ(ParseByteRate("800000"), 800000.0);
  EXPECT_EQ(ParseByteRate("500K"), 500.0 * 1024);
  EXPECT_EQ(ParseByteRate("20M"), 20.0 * 1024 * 1024);
  EXPECT_EQ(ParseByteRate("20m"), 20.0 * 1024 * 1024);
  EXPECT_EQ(ParseByteRate("20MiB/s"), 20.0 * 1024 * 1024);
  EXPECT_EQ(ParseByteRate("1.5G"), 1.5 * 1024 * 1024 * 1024);
  EXPECT_EQ(ParseByteRate("0"), 0.0);
  for (const char* bad :
       {"", "M", "-1M", "20 M", "20MB", "20x", "1e3", "nan", "20M/h"}) {
    EXPECT_FALSE(ParseByteRate(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace ferry
