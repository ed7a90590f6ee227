#include "ferry/retry_policy.h"

#include <algorithm>

namespace ferry {

RetryPolicy::RetryPolicy(const RetryOptions& options, uint64_t seed)
    : options_(options), random_(seed) {}

RetryDecision RetryPolicy::OnFailure(const Error& error, int attempt,
                                     Clock::time_point now) {
  if (error.retry_class() != RetryClass::kTransient ||
      attempt >= options_.max_attempts) {
    return {false, now};
  }
  // Full jitter: a uniform wait in [0, min(cap, base * 2^(attempt-1))], so
  // that files failing together do not come back together.
  int shift = std::min(attempt - 1, 20);
  auto ceiling =
      std::min(options_.max_delay, options_.base_delay * (1 << shift));
  std::uniform_int_distribution<int64_t> pick(0, ceiling.count());
  std::chrono::milliseconds wait(pick(random_));
  if (auto asked = error.retry_after()) wait = std::max(wait, *asked);
  return {true, now + wait};
}

}  // namespace ferry
