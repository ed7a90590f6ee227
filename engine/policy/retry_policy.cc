#include "ferry/retry_policy.h"

#include <algorithm>

namespace ferry {

RetryPolicy::RetryPolicy(const RetryOptions& options, uint64_t seed)
    : options_(options), random_(seed) {}

RetryDecision RetryPolicy::OnFailure(const Error& error,
                                     const FailedAttempt& attempt,
                                     Clock::time_point now) {
  RetryDecision decision;
  decision.not_before = now;
  if (error.code() == ErrorCode::kAuth) {
    // One refresh per token: a file refused with a token older than the
    // current one simply tries again with the new one.
    if (attempt.token_generation < token_generation_) {
      decision.action = RetryDecision::kRetry;
    } else {
      decision.action = RetryDecision::kRefreshToken;
    }
    return decision;
  }
  bool transient = error.retry_class() == RetryClass::kTransient;
  // Kept bytes that led to a wrong file cannot be told from the bad ones:
  // that file gets one more attempt from its first byte.
  bool suspect = attempt.resumed && error.code() == ErrorCode::kChecksum;
  if (error.retry_class() == RetryClass::kStopRun) {
    // The same command, run again, may continue what was kept.
    decision.action = RetryDecision::kStopRun;
    decision.resume_from = attempt.kept_bytes;
    return decision;
  }
  if (!(transient || suspect)) return decision;
  decision.resume_from = suspect ? 0 : attempt.kept_bytes;
  if (attempt.fruitless >= options_.max_attempts ||
      attempt.attempt >= 10 * options_.max_attempts) {
    return decision;  // given up; the same command may continue the bytes
  }
  decision.action = RetryDecision::kRetry;
  // Full jitter: a uniform wait in [0, min(cap, base * 2^(attempt-1))], so
  // that files failing together do not come back together.
  int shift = std::min(attempt.attempt - 1, 20);
  auto ceiling =
      std::min(options_.max_delay, options_.base_delay * (1 << shift));
  std::uniform_int_distribution<int64_t> pick(0, ceiling.count());
  std::chrono::milliseconds wait(pick(random_));
  if (auto asked = error.retry_after()) {
    wait = std::max(wait, *asked);
    // The server asked everyone to wait, not only this file.
    Clock::time_point until = now + *asked;
    if (until > hold_until_) {
      held_ += until - std::max(now, hold_until_);
      hold_until_ = until;
    }
  }
  decision.not_before = now + wait;
  return decision;
}

bool RetryPolicy::MayStartFile(Clock::time_point now) const {
  return now >= hold_until_ && failing_ < options_.max_failing;
}

}  // namespace ferry
