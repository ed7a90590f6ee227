// The one place that decides what follows a failed attempt. Pure: it does
// no I/O and never sleeps; the caller passes the current time and sets a
// timer for the answer.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

#include "ferry/error.h"

namespace ferry {

using Clock = std::chrono::steady_clock;

struct RetryOptions {
  int max_attempts = 4;  // attempts per file, the first one included
  std::chrono::milliseconds base_delay{250};
  std::chrono::milliseconds max_delay{15000};
};

struct RetryDecision {
  bool retry = false;
  Clock::time_point not_before;  // when the next attempt may start
};

class RetryPolicy {
 public:
  RetryPolicy(const RetryOptions& options, uint64_t seed);

  // `attempt` is the number of the attempt that just failed (1-based).
  // Transient errors are retried with exponential backoff and full
  // jitter, never sooner than a server's Retry-After; permanent ones and
  // run stoppers are not retried.
  RetryDecision OnFailure(const Error& error, int attempt,
                          Clock::time_point now);

  const RetryOptions& options() const { return options_; }

 private:
  RetryOptions options_;
  std::mt19937_64 random_;
};

}  // namespace ferry
