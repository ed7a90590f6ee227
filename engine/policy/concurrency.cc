#include "policy/concurrency.h"

#include <algorithm>

namespace ferry {
namespace {

constexpr auto kInterval = std::chrono::seconds(1);
// Throughput counts as fallen when both bytes and requests per second
// dropped by more than this share: noise between two seconds is larger
// than a step of one stream would cause.
constexpr double kFall = 0.10;
// Seconds without a step up after a step that was taken back.
constexpr int kHoldAfterStepBack = 5;

}  // namespace

Concurrency::Concurrency(int ceiling)
    : ceiling_(std::max(1, ceiling)), limit_(ceiling_), lowest_(ceiling_) {}

void Concurrency::Overloaded(Clock::time_point now) {
  // One overload shows as several failed requests at once: cut once for
  // all of them.
  if (cuts_ > 0 && now - last_cut_ < kInterval) return;
  last_cut_ = now;
  ++cuts_;
  limit_ = std::max(1, limit_ / 2);
  lowest_ = std::min(lowest_, limit_);
  grew_last_ = false;
  hold_ = 0;
  // The interval under way measured the old limit: start a new one.
  started_ = false;
}

void Concurrency::Tick(Clock::time_point now, uint64_t bytes,
                       uint64_t requests) {
  if (!started_) {
    started_ = true;
    interval_start_ = now;
    bytes_at_start_ = bytes;
    requests_at_start_ = requests;
    last_bytes_rate_ = -1;  // nothing to compare the first interval with
    return;
  }
  if (now - interval_start_ < kInterval) return;
  const double seconds =
      std::chrono::duration<double>(now - interval_start_).count();
  const double bytes_rate =
      static_cast<double>(bytes - bytes_at_start_) / seconds;
  const double request_rate =
      static_cast<double>(requests - requests_at_start_) / seconds;
  interval_start_ = now;
  bytes_at_start_ = bytes;
  requests_at_start_ = requests;
  const bool fell = last_bytes_rate_ >= 0 &&
                    bytes_rate < last_bytes_rate_ * (1 - kFall) &&
                    request_rate < last_request_rate_ * (1 - kFall);
  last_bytes_rate_ = bytes_rate;
  last_request_rate_ = request_rate;
  if (limit_ >= ceiling_) {
    grew_last_ = false;
  } else if (fell && grew_last_) {
    --limit_;  // the last step cost throughput: take it back, and wait
    grew_last_ = false;
    hold_ = kHoldAfterStepBack;
  } else if (hold_ > 0) {
    --hold_;
  } else {
    ++limit_;
    grew_last_ = true;
  }
}

}  // namespace ferry
